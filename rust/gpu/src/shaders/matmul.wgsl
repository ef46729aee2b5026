// C = A·B (or C += A·B) for row-major buffers, A (m x k) and B (k x n) read through strides
// and offsets, so that transposed operands need no copy. A dimension given as 0 is the step's
// batch rows times `rows_per_sample` (a Dense layer on a multi-axis input sees more than one row
// per sample).

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

// Each 16x16 workgroup computes a 64x64 block of C, each invocation a 4x4 block in registers,
// stepping through k in slices of 16 staged in workgroup memory (8 KiB).
const BLOCK: u32 = 64u;
const SLICE: u32 = 16u;
const PER_THREAD: u32 = 4u;
var<workgroup> tile_a: array<f32, 1024>;  // BLOCK rows x SLICE
var<workgroup> tile_b: array<f32, 1024>;  // SLICE x BLOCK columns

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) local: vec3<u32>, @builtin(workgroup_id) group: vec3<u32>) {
    let m = select(d.m, step.rows * d.rows_per_sample, d.m == 0u);
    let k = select(d.k, step.rows * d.rows_per_sample, d.k == 0u);
    let n = d.n;
    let thread = local.y * 16u + local.x;
    let row0 = group.y * BLOCK;
    let col0 = group.x * BLOCK;
    var sums: array<f32, 16>;
    for (var k0 = 0u; k0 < k; k0 += SLICE) {
        // 1,024 values of each tile, four per invocation.
        for (var t = 0u; t < 4u; t++) {
            let at = thread + t * 256u;
            let ra = row0 + at / SLICE;
            let ka = k0 + at % SLICE;
            var va = 0.0;
            if (ra < m && ka < k) {
                va = a[d.a_offset + ra * d.a_row + ka * d.a_col];
            }
            tile_a[at] = va;
            let kb = k0 + at / BLOCK;
            let cb = col0 + at % BLOCK;
            var vb = 0.0;
            if (kb < k && cb < n) {
                vb = b[d.b_offset + kb * d.b_row + cb * d.b_col];
            }
            tile_b[at] = vb;
        }
        workgroupBarrier();
        for (var s = 0u; s < SLICE; s++) {
            var column: array<f32, 4>;
            var row: array<f32, 4>;
            for (var i = 0u; i < PER_THREAD; i++) {
                column[i] = tile_a[(local.y * PER_THREAD + i) * SLICE + s];
                row[i] = tile_b[s * BLOCK + local.x * PER_THREAD + i];
            }
            for (var i = 0u; i < PER_THREAD; i++) {
                for (var j = 0u; j < PER_THREAD; j++) {
                    sums[i * PER_THREAD + j] += column[i] * row[j];
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < PER_THREAD; i++) {
        let r = row0 + local.y * PER_THREAD + i;
        for (var j = 0u; j < PER_THREAD; j++) {
            let col = col0 + local.x * PER_THREAD + j;
            if (r < m && col < n) {
                let at = d.c_offset + r * n + col;
                if (d.accumulate == 1u) {
                    c[at] += sums[i * PER_THREAD + j];
                } else {
                    c[at] = sums[i * PER_THREAD + j];
                }
            }
        }
    }
}
