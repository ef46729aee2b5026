// The second half of a gradient summed over a batch: `partials` holds one row of `len` values
// per sample; each invocation sums one column in sample order (the same order whatever the
// GPU) into the gradients from `offset`, or adds it to them with `accumulate` (a shared layer's
// later call).

struct Params {
    len: u32,
    offset: u32,
    accumulate: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> partials: array<f32>;
@group(0) @binding(1) var<storage, read_write> grads: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<uniform> step: Step;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let w = flat_index(id, groups);
    if (w >= p.len) {
        return;
    }
    var sum = 0.0;
    for (var r = 0u; r < step.rows; r++) {
        sum += partials[r * p.len + w];
    }
    grads[p.offset + w] = select(0.0, grads[p.offset + w], p.accumulate == 1u) + sum;
}
