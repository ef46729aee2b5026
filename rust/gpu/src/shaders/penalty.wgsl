// A weight regularizer, l1·Σ|w| + l2·Σw², over one range of the weights: `gradient` adds its
// gradient to the weights' (one invocation per weight), `value` adds its value to the batch's
// penalty slot of the epoch's statistics (one invocation).

struct Params {
    offset: u32,
    len: u32,
    slot: u32,    // the penalty's place in a batch's statistics
    stride: u32,  // statistics per batch
    l1: f32,
    l2: f32,
    _pad: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> weights: array<f32>;
@group(0) @binding(1) var<storage, read_write> grads: array<f32>;
@group(0) @binding(2) var<storage, read_write> statistics: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<uniform> step: Step;

@compute @workgroup_size(64)
fn gradient(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(id, groups);
    if (i >= p.len) {
        return;
    }
    let w = weights[p.offset + i];
    grads[p.offset + i] += p.l1 * sign(w) + 2.0 * p.l2 * w;
}

@compute @workgroup_size(1)
fn value() {
    var total = 0.0;
    for (var i = 0u; i < p.len; i++) {
        let w = weights[p.offset + i];
        total += p.l1 * abs(w) + p.l2 * w * w;
    }
    statistics[step.batch * p.stride + p.slot] += total;
}
