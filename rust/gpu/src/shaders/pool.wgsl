// Max and average pooling, channel by channel. Max pooling records where each maximum came
// from (the first maximum in row-major order, as pynn-core and TensorFlow break ties) and sends
// the gradient there; average pooling divides by the real (unpadded) values of each window.

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> argmax: array<u32>;
@group(0) @binding(3) var<uniform> g: Windows;
@group(0) @binding(4) var<uniform> step: Step;

@compute @workgroup_size(64)
fn forward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(id, groups);
    let per_image = g.out_h * g.out_w * g.channels;
    if (i >= step.rows * per_image) {
        return;
    }
    let r = i / per_image;
    let c = i % g.channels;
    let pixel = (i % per_image) / g.channels;
    let oy = pixel / g.out_w;
    let ox = pixel % g.out_w;
    let image = r * g.in_h * g.in_w * g.channels;
    var best = -3.4e38;
    var best_at = 0u;
    var sum = 0.0;
    var count = 0u;
    for (var kh = 0u; kh < g.k_h; kh++) {
        let iy = source(oy, kh, g.stride_h, 1u, g.pad_h, g.in_h);
        if (iy < 0) {
            continue;
        }
        for (var kw = 0u; kw < g.k_w; kw++) {
            let ix = source(ox, kw, g.stride_w, 1u, g.pad_w, g.in_w);
            if (ix < 0) {
                continue;
            }
            let at = (u32(iy) * g.in_w + u32(ix)) * g.channels + c;
            let value = x[image + at];
            if (count == 0u || value > best) {
                best = value;
                best_at = at;
            }
            sum += value;
            count += 1u;
        }
    }
    if (g.kind == MAX_POOL) {
        y[i] = best;
        argmax[i] = best_at;
    } else {
        y[i] = sum / f32(count);
    }
}
