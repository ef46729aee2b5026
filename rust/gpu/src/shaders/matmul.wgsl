// C = A·B (or C += A·B) for row-major buffers, A (m x k) and B (k x n) read through strides
// and offsets, so that transposed operands need no copy. A dimension given as 0 is the step's
// batch rows times `rows_per_sample` (a Dense layer on a multi-axis input sees more than one row
// per sample). 16x16 tiles staged in workgroup memory, one output per invocation.

struct Dims {
    m: u32,
    n: u32,
    k: u32,
    accumulate: u32,
    a_offset: u32,
    a_row: u32,   // stride between rows of A
    a_col: u32,   // stride between columns of A
    b_offset: u32,
    b_row: u32,
    b_col: u32,
    c_offset: u32,
    rows_per_sample: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> d: Dims;
@group(0) @binding(4) var<uniform> step: Step;

const TILE: u32 = 16u;
var<workgroup> tile_a: array<f32, 256>;
var<workgroup> tile_b: array<f32, 256>;

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) local: vec3<u32>, @builtin(workgroup_id) group: vec3<u32>) {
    let m = select(d.m, step.rows * d.rows_per_sample, d.m == 0u);
    let k = select(d.k, step.rows * d.rows_per_sample, d.k == 0u);
    let n = d.n;
    let row = group.y * TILE + local.y;
    let col = group.x * TILE + local.x;
    var sum = 0.0;
    for (var k0 = 0u; k0 < k; k0 += TILE) {
        let ka = k0 + local.x;
        var va = 0.0;
        if (row < m && ka < k) {
            va = a[d.a_offset + row * d.a_row + ka * d.a_col];
        }
        tile_a[local.y * TILE + local.x] = va;
        let kb = k0 + local.y;
        var vb = 0.0;
        if (kb < k && col < n) {
            vb = b[d.b_offset + kb * d.b_row + col * d.b_col];
        }
        tile_b[local.y * TILE + local.x] = vb;
        workgroupBarrier();
        for (var i = 0u; i < TILE; i++) {
            sum += tile_a[local.y * TILE + i] * tile_b[i * TILE + local.x];
        }
        workgroupBarrier();
    }
    if (row < m && col < n) {
        let at = d.c_offset + row * n + col;
        if (d.accumulate == 1u) {
            c[at] += sum;
        } else {
            c[at] = sum;
        }
    }
}
