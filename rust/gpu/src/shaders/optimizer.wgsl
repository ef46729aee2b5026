// One optimizer step over every weight, with pynn-core's `optim` formulas.

// The step's scalars: SGD and RMSprop use `momentum`; Adam `alpha`, `c1` = 1 − β₁ and
// `c2` = 1 − β₂; RMSprop `c1` = ρ and `c2` = 1 − ρ. The kinds (`SGD`, ...) come from `codes.rs`.

struct Params {
    n: u32,
    kind: u32,
    nesterov: u32,
    centered: u32,  // RMSprop: centered; Adam: amsgrad (the running maximum of v in a)
    offset: u32,    // the first weight of the range stepped (`n` weights)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// Slots: SGD's velocity and Adam's first moment in m; Adam's second moment, RMSprop's velocity
// and Adagrad's accumulator in v; RMSprop's momentum in m and its average gradient in a.
@group(0) @binding(0) var<storage, read_write> w: array<f32>;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> a: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;
@group(0) @binding(6) var<uniform> step: Step;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let k = flat_index(id, groups);
    if (k >= p.n) {
        return;
    }
    let i = p.offset + k;
    let gi = g[i];
    if (p.kind == RMSPROP) {
        v[i] = step.c1 * v[i] + step.c2 * (gi * gi);
        var denominator = v[i] + step.epsilon;
        if (p.centered == 1u) {
            a[i] = step.c1 * a[i] + step.c2 * gi;
            denominator = v[i] - a[i] * a[i] + step.epsilon;
        }
        let increment = step.learning_rate * gi / sqrt(denominator);
        if (step.momentum > 0.0) {
            m[i] = step.momentum * m[i] + increment;
            w[i] -= m[i];
        } else {
            w[i] -= increment;
        }
    } else if (p.kind == ADAGRAD) {
        v[i] += gi * gi;
        w[i] -= step.learning_rate * gi / sqrt(v[i] + step.epsilon);
    } else if (p.kind == ADAM) {
        m[i] += (gi - m[i]) * step.c1;
        v[i] += (gi * gi - v[i]) * step.c2;
        var second = v[i];
        if (p.centered == 1u) {
            a[i] = max(a[i], v[i]);
            second = a[i];
        }
        w[i] -= m[i] * step.alpha / (sqrt(second) + step.epsilon);
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
