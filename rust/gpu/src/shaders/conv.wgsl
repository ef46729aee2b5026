// Direct convolution: `forward` writes the pre-activation z (one invocation per output value;
// bias and activation follow in the epilogue), `kernel_gradient` one kernel value's sum over
// one image's pixels per invocation (sum_partials.wgsl then adds the images' partials in a
// fixed order), `input_gradient` one input value per invocation.

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> g: Windows;
@group(0) @binding(4) var<uniform> step: Step;

fn kernel_at(kh: u32, kw: u32, c: u32, f: u32) -> u32 {
    return g.offset + ((kh * g.k_w + kw) * g.channels + c) * g.filters + f;
}

// a: the input x, b: the weights, out: z.
@compute @workgroup_size(64)
fn forward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(id, groups);
    let per_image = g.out_h * g.out_w * g.filters;
    if (i >= step.rows * per_image) {
        return;
    }
    let r = i / per_image;
    let f = i % g.filters;
    let pixel = (i % per_image) / g.filters;
    let oy = pixel / g.out_w;
    let ox = pixel % g.out_w;
    let image = r * g.in_h * g.in_w * g.channels;
    var sum = 0.0;
    for (var kh = 0u; kh < g.k_h; kh++) {
        let iy = source(oy, kh, g.stride_h, g.dilation_h, g.pad_h, g.in_h);
        if (iy < 0) {
            continue;
        }
        for (var kw = 0u; kw < g.k_w; kw++) {
            let ix = source(ox, kw, g.stride_w, g.dilation_w, g.pad_w, g.in_w);
            if (ix < 0) {
                continue;
            }
            let at = image + (u32(iy) * g.in_w + u32(ix)) * g.channels;
            for (var c = 0u; c < g.channels; c++) {
                sum += a[at + c] * b[kernel_at(kh, kw, c, f)];
            }
        }
    }
    out[i] = sum;
}

// a: the input x, b: ∂loss/∂z, out: per image, its part of each kernel value's gradient.
@compute @workgroup_size(64)
fn kernel_gradient(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(id, groups);
    let kernel_len = g.k_h * g.k_w * g.channels * g.filters;
    if (i >= step.rows * kernel_len) {
        return;
    }
    let r = i / kernel_len;
    let w = i % kernel_len;
    let f = w % g.filters;
    let c = (w / g.filters) % g.channels;
    let kw = (w / (g.filters * g.channels)) % g.k_w;
    let kh = w / (g.filters * g.channels * g.k_w);
    var sum = 0.0;
    {
        let image = r * g.in_h * g.in_w * g.channels;
        let outputs = r * g.out_h * g.out_w * g.filters;
        for (var oy = 0u; oy < g.out_h; oy++) {
            let iy = source(oy, kh, g.stride_h, g.dilation_h, g.pad_h, g.in_h);
            if (iy < 0) {
                continue;
            }
            for (var ox = 0u; ox < g.out_w; ox++) {
                let ix = source(ox, kw, g.stride_w, g.dilation_w, g.pad_w, g.in_w);
                if (ix < 0) {
                    continue;
                }
                let x = a[image + (u32(iy) * g.in_w + u32(ix)) * g.channels + c];
                sum += x * b[outputs + (oy * g.out_w + ox) * g.filters + f];
            }
        }
    }
    out[i] = sum;
}

// a: ∂loss/∂z, b: the weights, out: ∂loss/∂x.
@compute @workgroup_size(64)
fn input_gradient(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(id, groups);
    let per_image = g.in_h * g.in_w * g.channels;
    if (i >= step.rows * per_image) {
        return;
    }
    let r = i / per_image;
    let c = i % g.channels;
    let pixel = (i % per_image) / g.channels;
    let iy = pixel / g.in_w;
    let ix = pixel % g.in_w;
    let outputs = r * g.out_h * g.out_w * g.filters;
    var sum = 0.0;
    for (var kh = 0u; kh < g.k_h; kh++) {
        // Output row oy reads row iy through tap kh when oy·stride + kh·dilation − pad = iy.
        let reach = i32(iy + g.pad_h) - i32(kh * g.dilation_h);
        if (reach < 0 || u32(reach) % g.stride_h != 0u || u32(reach) / g.stride_h >= g.out_h) {
            continue;
        }
        let oy = u32(reach) / g.stride_h;
        for (var kw = 0u; kw < g.k_w; kw++) {
            let across = i32(ix + g.pad_w) - i32(kw * g.dilation_w);
            if (across < 0 || u32(across) % g.stride_w != 0u || u32(across) / g.stride_w >= g.out_w) {
                continue;
            }
            let ox = u32(across) / g.stride_w;
            let dz = outputs + (oy * g.out_w + ox) * g.filters;
            for (var f = 0u; f < g.filters; f++) {
                sum += a[dz + f] * b[kernel_at(kh, kw, c, f)];
            }
        }
    }
    out[i] = sum;
}
