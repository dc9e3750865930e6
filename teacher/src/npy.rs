//! NumPy `.npy` files (format version 1.0): clips saved as raw arrays (`np.save`), and the
//! inputs and outputs of export parity checks, so any runtime can be fed them: `np.load("x.npy")`.

use std::path::Path;

use crate::checkpoint::write_atomic;
use crate::error::{Error, Result};

/// Element data of an array to write.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

impl NpyData {
    fn descr(&self) -> &'static str {
        match self {
            NpyData::F32(_) => "<f4",
            NpyData::I64(_) => "<i8",
        }
    }

    fn len(&self) -> usize {
        match self {
            NpyData::F32(v) => v.len(),
            NpyData::I64(v) => v.len(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        match self {
            NpyData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            NpyData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

/// The bytes of a `.npy` v1.0 file: magic, version, header length (u16 LE), a Python-dict header
/// padded with spaces so the data starts at a multiple of 64 bytes, then C-order data.
pub fn npy_bytes(shape: &[usize], data: &NpyData) -> Vec<u8> {
    assert_eq!(
        shape.iter().product::<usize>(),
        data.len(),
        "shape and data length agree, by construction of the caller"
    );
    let dims = match shape {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {dims}, }}",
        data.descr()
    );
    // magic (6) + version (2) + length (2) + header + '\n' ≡ 0 (mod 64)
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 8);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&data.bytes());
    out
}

/// Write one array atomically.
pub fn write_npy(path: &Path, shape: &[usize], data: &NpyData) -> Result<()> {
    write_atomic(path, &npy_bytes(shape, data))
}

/// Read a `.npy` v1.0 file written by [`write_npy`] (little-endian f4/i8, C order).
pub fn read_npy(path: &Path) -> Result<(Vec<usize>, NpyData)> {
    let bad = |m: &str| Error::Data {
        path: path.to_path_buf(),
        message: format!(
            "is not a .npy file this reader understands ({m}); write it with numpy.save as \
             float32 or int64 in C order"
        ),
    };
    let bytes = std::fs::read(path).map_err(Error::io("read", path))?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("bad magic"));
    }
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(bytes.get(10..10 + hlen).ok_or_else(|| bad("truncated"))?)
        .map_err(|_| bad("header is not text"))?;
    if header.contains("'fortran_order': True") {
        return Err(bad("Fortran order"));
    }
    let shape_text = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("no shape"))?;
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| bad("bad shape")))
        .collect::<Result<Vec<_>>>()?;
    let body = &bytes[10 + hlen..];
    let n: usize = shape.iter().product();
    let data = if header.contains("'<f4'") {
        if body.len() != n * 4 {
            return Err(bad("data length does not match the shape"));
        }
        NpyData::F32(
            body.chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect(),
        )
    } else if header.contains("'<i8'") {
        if body.len() != n * 8 {
            return Err(bad("data length does not match the shape"));
        }
        NpyData::I64(
            body.chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect(),
        )
    } else {
        return Err(bad("dtype is not <f4 or <i8"));
    };
    Ok((shape, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_64_byte_aligned_and_matches_numpy() {
        // numpy.save(f, np.zeros((2, 3), np.float32)) writes exactly this header
        // (format 1.0: 118 spaces-padded bytes + '\n' so that 10 + 118 = 128).
        let b = npy_bytes(&[2, 3], &NpyData::F32(vec![0.0; 6]));
        let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        let header = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
        assert!(header.ends_with('\n'));
        assert_eq!(b.len(), 10 + hlen + 24);
    }

    #[test]
    fn one_dim_shape_has_trailing_comma() {
        let b = npy_bytes(&[4], &NpyData::I64(vec![1, 2, 3, 4]));
        let text = String::from_utf8_lossy(&b[10..]);
        assert!(text.contains("'shape': (4,)"), "{text}");
        assert!(text.contains("'<i8'"));
    }
}
