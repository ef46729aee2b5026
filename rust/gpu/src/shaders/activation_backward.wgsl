// ∂loss/∂z from ∂loss/∂a, in place: g *= f'(z) per element, or for softmax per row
// g = a ⊙ (g − Σ g·a). Then `bias_gradient` sums each column of g over one sample's rows into
// that sample's partial (binding 3), which sum_partials.wgsl adds up in a fixed order.

@group(0) @binding(0) var<storage, read_write> g: array<f32>;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read_write> grads: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
@group(0) @binding(5) var<uniform> step: Step;

@compute @workgroup_size(64)
fn backward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(id, groups);
    if (i >= step.rows * p.n) {
        return;
    }
    g[i] = g[i] * slope(p.activation, z[i], a[i]);
}

@compute @workgroup_size(64)
fn backward_softmax(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let r = flat_index(id, groups);
    if (r >= step.rows * (p.n / p.period)) {
        return;
    }
    let first = r * p.period;
    var dot = 0.0;
    for (var j = 0u; j < p.period; j++) {
        dot += g[first + j] * a[first + j];
    }
    for (var j = 0u; j < p.period; j++) {
        g[first + j] = a[first + j] * (g[first + j] - dot);
    }
}

@compute @workgroup_size(64)
fn bias_gradient(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(id, groups);
    if (i >= step.rows * p.period) {
        return;
    }
    let sample = i / p.period;
    let j = i % p.period;
    let rows = p.n / p.period;
    var sum = 0.0;
    for (var q = 0u; q < rows; q++) {
        sum += g[(sample * rows + q) * p.period + j];
    }
    grads[i] = sum;
}
