// ∂loss/∂x of pooling, one input value per invocation: the sum over the windows that hold it
// (max: only those whose maximum it was; average: each window's gradient over its count).

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;
@group(0) @binding(2) var<storage, read> argmax: array<u32>;
@group(0) @binding(3) var<uniform> g: Windows;
@group(0) @binding(4) var<uniform> step: Step;

// The outputs whose windows hold input coordinate i along one axis: [first, last].
fn covering(i: u32, size: u32, stride: u32, pad: u32, out: u32) -> vec2<i32> {
    let reach = i32(i + pad);
    let first = max(0, (reach - i32(size) + i32(stride)) / i32(stride));
    let last = min(i32(out) - 1, reach / i32(stride));
    return vec2<i32>(first, last);
}

fn real_count(o: u32, size: u32, stride: u32, pad: u32, input: u32) -> u32 {
    let start = i32(o * stride) - i32(pad);
    let first = max(start, 0);
    let end = min(start + i32(size), i32(input));
    return u32(max(end - first, 0));
}

@compute @workgroup_size(64)
fn backward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(id, groups);
    let per_image = g.in_h * g.in_w * g.channels;
    if (i >= step.rows * per_image) {
        return;
    }
    let r = i / per_image;
    let at = i % per_image;
    let c = at % g.channels;
    let pixel = at / g.channels;
    let iy = pixel / g.in_w;
    let ix = pixel % g.in_w;
    let rows = covering(iy, g.k_h, g.stride_h, g.pad_h, g.out_h);
    let cols = covering(ix, g.k_w, g.stride_w, g.pad_w, g.out_w);
    let outputs = r * g.out_h * g.out_w * g.channels;
    var sum = 0.0;
    for (var oy = rows.x; oy <= rows.y; oy++) {
        for (var ox = cols.x; ox <= cols.y; ox++) {
            let o = outputs + (u32(oy) * g.out_w + u32(ox)) * g.channels + c;
            if (g.kind == MAX_POOL) {
                if (argmax[o] == at) {
                    sum += dy[o];
                }
            } else {
                let count = real_count(u32(oy), g.k_h, g.stride_h, g.pad_h, g.in_h)
                    * real_count(u32(ox), g.k_w, g.stride_w, g.pad_w, g.in_w);
                sum += dy[o] / f32(count);
            }
        }
    }
    dx[i] = sum;
}
