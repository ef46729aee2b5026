// Element-wise merges (pynn-core's `ops::merge`) over inputs gathered side by side: per sample,
// `stacked` holds input k's values, broadcast to the output's shape, from k·n. `fold` combines
// them left to right as the CPU folds them, then applies the fused activation; `local_gradients`
// turns ∂loss/∂y into each input's gradient, in place of its values; `gather` and `reduce` move
// a broadcast input in through its map and its gradient out (summed over the output values
// that read each input value, in their order).
//
// A broadcast input's map (binding 3): for each output value the input value it reads (n),
// then for each input value where its readers start in the list that follows (size + 1), then
// that list (n).

struct Params {
    n: u32,           // values per sample of the output
    inputs: u32,
    op: u32,
    activation: u32,  // the fused activation (LINEAR: none)
    size: u32,        // gather, reduce: values per sample of the input
    index: u32,       // gather, reduce: which input
    accumulate: u32,  // reduce: add to the input's gradient instead of writing it
    _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> stacked: array<f32>;
@group(0) @binding(1) var<storage, read_write> tensor: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read> maps: array<u32>;
@group(0) @binding(4) var<uniform> p: Params;
@group(0) @binding(5) var<uniform> step: Step;

fn combine(a: f32, b: f32) -> f32 {
    switch p.op {
        case SUBTRACT: { return a - b; }
        case MULTIPLY: { return a * b; }
        case MAXIMUM: { return max(a, b); }
        case MINIMUM: { return min(a, b); }
        default: { return a + b; }
    }
}

// Where input k's value of output value e of `sample` is.
fn at(sample: u32, k: u32, e: u32) -> u32 {
    return (sample * p.inputs + k) * p.n + e;
}

// y = f(fold(inputs)), into `tensor`.
@compute @workgroup_size(64)
fn fold(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(id, groups);
    if (i >= step.rows * p.n) {
        return;
    }
    let sample = i / p.n;
    let e = i % p.n;
    var v = stacked[at(sample, 0u, e)];
    for (var k = 1u; k < p.inputs; k++) {
        v = combine(v, stacked[at(sample, k, e)]);
    }
    if (p.op == AVERAGE) {
        v = v / f32(p.inputs);
    }
    tensor[i] = activate(p.activation, v);
}

// From ∂loss/∂y in `tensor` and y: each input's gradient in place of its value. Ties of Maximum
// and Minimum go to the first input holding the extreme.
@compute @workgroup_size(64)
fn local_gradients(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(id, groups);
    if (i >= step.rows * p.n) {
        return;
    }
    let sample = i / p.n;
    let e = i % p.n;
    let g = tensor[i] * slope(p.activation, y[i], y[i]);
    var values: array<f32, 16>;
    var winner = 0u;
    for (var k = 0u; k < p.inputs; k++) {
        values[k] = stacked[at(sample, k, e)];
        let better = (p.op == MAXIMUM && values[k] > values[winner])
            || (p.op == MINIMUM && values[k] < values[winner]);
        if (better) {
            winner = k;
        }
    }
    for (var k = 0u; k < p.inputs; k++) {
        var d = g;
        switch p.op {
            case SUBTRACT: { d = select(-g, g, k == 0u); }
            case AVERAGE: { d = g / f32(p.inputs); }
            case MULTIPLY: {
                for (var j = 0u; j < p.inputs; j++) {
                    if (j != k) {
                        d = d * values[j];
                    }
                }
            }
            case MAXIMUM, MINIMUM: { d = select(0.0, g, k == winner); }
            default: {}
        }
        stacked[at(sample, k, e)] = d;
    }
}

// Input `index` (in `tensor`) broadcast into its place in `stacked`.
@compute @workgroup_size(64)
fn gather(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(id, groups);
    if (i >= step.rows * p.n) {
        return;
    }
    let sample = i / p.n;
    let e = i % p.n;
    stacked[at(sample, p.index, e)] = tensor[sample * p.size + maps[e]];
}

// Input `index`'s gradient (into `tensor`): each of its values' readers' gradients, summed.
@compute @workgroup_size(64)
fn reduce(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(id, groups);
    if (i >= step.rows * p.size) {
        return;
    }
    let sample = i / p.size;
    let j = i % p.size;
    var sum = 0.0;
    for (var r = maps[p.n + j]; r < maps[p.n + j + 1u]; r++) {
        sum += stacked[at(sample, p.index, maps[p.n + p.size + 1u + r])];
    }
    tensor[i] = select(0.0, tensor[i], p.accumulate == 1u) + sum;
}
