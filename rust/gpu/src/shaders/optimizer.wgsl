// One optimizer step over every weight, with pynn-core's `optim` formulas.

const SGD: u32 = 0u;
const ADAM: u32 = 1u;

struct Params {
    n: u32,
    kind: u32,
    nesterov: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> w: array<f32>;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
@group(0) @binding(5) var<uniform> step: Step;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(id, groups);
    if (i >= p.n) {
        return;
    }
    let gi = g[i];
    if (p.kind == ADAM) {
        m[i] += (gi - m[i]) * step.c1;
        v[i] += (gi * gi - v[i]) * step.c2;
        w[i] -= m[i] * step.alpha / (sqrt(v[i]) + step.epsilon);
    } else if (step.momentum == 0.0) {
        w[i] -= gi * step.learning_rate;
    } else {
        m[i] = m[i] * step.momentum - gi * step.learning_rate;
        if (p.nesterov == 1u) {
            w[i] += m[i] * step.momentum - gi * step.learning_rate;
        } else {
            w[i] += m[i];
        }
    }
}
