//! Fallible allocation. Every buffer whose size comes from the user (weights, a batch's
//! activations and scratch, predictions, optimizer state) is reserved with `try_reserve`, so
//! that running out of memory is an error the caller sees (`MemoryError` in Python), never an
//! abort of the process; a size beyond what any machine can address is an error of its own.

use crate::error::{CoreError, Result};

/// The error for `len` values of `T` that could not be allocated: too large for any machine
/// (more than `isize::MAX` bytes), or more than this one has.
pub fn allocation_error<T>(len: usize) -> CoreError {
    let bytes = len as u128 * std::mem::size_of::<T>() as u128;
    if bytes > isize::MAX as u128 {
        CoreError::TooLarge {
            what: "A buffer".into(),
            bytes,
            hint: String::new(),
        }
    } else {
        CoreError::OutOfMemory {
            what: "a buffer".into(),
            bytes,
            hint: String::new(),
        }
    }
}

/// `len` copies of `value`.
pub fn try_filled<T: Clone>(len: usize, value: T) -> Result<Vec<T>> {
    let mut values = Vec::new();
    values
        .try_reserve_exact(len)
        .map_err(|_| allocation_error::<T>(len))?;
    values.resize(len, value);
    Ok(values)
}

/// A copy of `values`.
pub fn try_copy<T: Clone>(values: &[T]) -> Result<Vec<T>> {
    let mut copy = Vec::new();
    copy.try_reserve_exact(values.len())
        .map_err(|_| allocation_error::<T>(values.len()))?;
    copy.extend_from_slice(values);
    Ok(copy)
}

/// Grows `buffer` to hold at least `len` values; never shrinks it, so that a smaller last batch
/// does not give memory back and the next epoch's first batch does not allocate.
pub fn ensure_len<T: Clone + Default>(buffer: &mut Vec<T>, len: usize) -> Result<()> {
    if buffer.len() < len {
        buffer
            .try_reserve_exact(len - buffer.len())
            .map_err(|_| allocation_error::<T>(len))?;
        buffer.resize(len, T::default());
    }
    Ok(())
}

/// `a * b` for sizes, or the error of a buffer no machine has.
pub fn checked_mul(a: usize, b: usize) -> Result<usize> {
    a.checked_mul(b).ok_or_else(|| CoreError::TooLarge {
        what: "A buffer".into(),
        bytes: a as u128 * b as u128 * 4,
        hint: String::new(),
    })
}

/// `prod(shape)`, or an error when it overflows.
pub fn checked_volume(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            CoreError::invalid("shape", "a size that fits in memory", format!("{shape:?}"))
        })
}

/// `bytes` as a person reads it: "4.0 KiB", "64.0 GiB".
pub fn readable_bytes(bytes: u128) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{bytes} B"),
        _ => format!("{value:.1} {}", UNITS[unit]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_sizes_are_errors_not_aborts() {
        assert!(matches!(
            try_filled(usize::MAX / 2, 0.0f32),
            Err(CoreError::TooLarge { .. })
        ));
        // 2^61 bytes: addressable, more than any machine here has.
        assert!(matches!(
            try_filled(1usize << 59, 0.0f32),
            Err(CoreError::OutOfMemory { .. })
        ));
        let mut buffer = vec![1.0f32; 3];
        assert!(ensure_len(&mut buffer, 1 << 60).is_err());
        assert_eq!(buffer, [1.0; 3]);
        ensure_len(&mut buffer, 5).unwrap();
        assert_eq!(buffer, [1.0, 1.0, 1.0, 0.0, 0.0]);
        assert_eq!(try_copy(&buffer[..2]).unwrap(), [1.0, 1.0]);
        assert!(checked_mul(usize::MAX, 2).is_err());
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(readable_bytes(12), "12 B");
        assert_eq!(readable_bytes(1536), "1.5 KiB");
        assert_eq!(readable_bytes(64 << 30), "64.0 GiB");
    }
}
