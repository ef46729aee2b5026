// A regularizer, l1·Σ|v| + l2·Σv², over a range of the weights or over a layer's outputs (an
// activity regularizer, divided by the batch's sample count as Keras divides it): `gradient`
// adds its gradient to the values' gradients (one invocation per value), `value` adds its value
// to the batch's penalty slot of the epoch's statistics (one invocation).

struct Params {
    offset: u32,
    len: u32,         // values, or values per sample for outputs
    slot: u32,        // the penalty's place in a batch's statistics
    stride: u32,      // statistics per batch
    l1: f32,
    l2: f32,
    per_sample: u32,  // 1 for outputs: `len` per sample, scaled by 1/samples
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> values: array<f32>;
@group(0) @binding(1) var<storage, read_write> gradients: array<f32>;
@group(0) @binding(2) var<storage, read_write> statistics: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<uniform> step: Step;

fn total() -> u32 {
    return select(p.len, p.len * step.rows, p.per_sample == 1u);
}

fn scale() -> f32 {
    return select(1.0, 1.0 / f32(step.rows), p.per_sample == 1u);
}

@compute @workgroup_size(64)
fn gradient(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(id, groups);
    if (i >= total()) {
        return;
    }
    let v = values[p.offset + i];
    gradients[p.offset + i] += scale() * (p.l1 * sign(v) + 2.0 * p.l2 * v);
}

@compute @workgroup_size(1)
fn value() {
    var sum = 0.0;
    for (var i = 0u; i < total(); i++) {
        let v = values[p.offset + i];
        sum += p.l1 * abs(v) + p.l2 * v * v;
    }
    statistics[step.batch * p.stride + p.slot] += scale() * sum;
}
