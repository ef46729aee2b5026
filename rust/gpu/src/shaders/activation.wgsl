// A Dense or convolution layer's epilogue: z += bias, a = f(z). `forward` runs per element,
// `forward_softmax` per row (softmax normalises each row of `period` values).

@group(0) @binding(0) var<storage, read_write> z: array<f32>;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;
@group(0) @binding(2) var<storage, read> weights: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<uniform> step: Step;

@compute @workgroup_size(64)
fn forward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(id, groups);
    if (i >= step.rows * p.n) {
        return;
    }
    var value = z[i];
    if (p.use_bias == 1u) {
        value += weights[p.bias_offset + i % p.period];
        z[i] = value;
    }
    a[i] = activate(p.activation, value);
}

@compute @workgroup_size(64)
fn forward_softmax(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let r = flat_index(id, groups);
    if (r >= step.rows * (p.n / p.period)) {
        return;
    }
    let first = r * p.period;
    var top = -3.4e38;
    for (var j = 0u; j < p.period; j++) {
        var value = z[first + j];
        if (p.use_bias == 1u) {
            value += weights[p.bias_offset + j];
            z[first + j] = value;
        }
        top = max(top, value);
    }
    var sum = 0.0;
    for (var j = 0u; j < p.period; j++) {
        let e = exp(z[first + j] - top);
        a[first + j] = e;
        sum += e;
    }
    for (var j = 0u; j < p.period; j++) {
        a[first + j] = a[first + j] / sum;
    }
}
