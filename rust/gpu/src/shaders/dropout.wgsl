// Dropout on the GPU: out = input ⊙ mask, where the mask (already scaled by 1/(1 − rate)) is
// drawn by pynn-core's Dropout for the step and uploaded with the batch; the backward is the same
// product on the gradient, added to what `out` holds with `accumulate`.

struct Params {
    n: u32,   // values per sample
    accumulate: u32,
    _pad2: u32,
    _pad3: u32,
}

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> mask: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<uniform> step: Step;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(id, groups);
    if (i >= step.rows * p.n) {
        return;
    }
    out[i] = select(0.0, out[i], p.accumulate == 1u) + input[i] * mask[i];
}
