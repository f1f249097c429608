//! The in-memory tail of a part being written: what the Parquet file writer produced since
//! the last row group was handed to the upload, kept as fixed-size segments.
//!
//! A single `Vec<u8>` regrew by doubling to ~32 MiB for every row group of long text rows
//! (copying what it held each time) and was then freed. glibc's dynamic mmap threshold
//! moves those sizes into the malloc arenas, where the staircase of 4–32 MiB blocks
//! fragments them: peak RSS crept from ~140 MiB at 2M scraped rows to ~165 MiB at 10M.
//! Segments of one size are never regrown, and each is handed to the upload as is.

use std::io::Write;

use bytes::Bytes;

/// Size of one segment: under glibc's initial mmap threshold (128 KiB), so segments always
/// come from the arenas and freed ones are reused rather than mapped and faulted in again
/// (1 MiB segments measured the same CPU within noise and 2–4 MiB more peak RSS).
const SEGMENT_BYTES: usize = 64 << 10;

/// A `Write` target that keeps its bytes in [`SEGMENT_BYTES`] pieces.
#[derive(Debug, Default)]
pub(crate) struct Segments {
    full: Vec<Bytes>,
    open: Vec<u8>,
}

impl Segments {
    /// Everything written since the last call, in order; empty segments are never returned.
    pub(crate) fn take(&mut self) -> Vec<Bytes> {
        if !self.open.is_empty() {
            self.full.push(Bytes::from(std::mem::take(&mut self.open)));
        }
        std::mem::take(&mut self.full)
    }
}

impl Write for Segments {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            if self.open.capacity() == 0 {
                self.open = Vec::with_capacity(SEGMENT_BYTES);
            }
            let n = (SEGMENT_BYTES - self.open.len()).min(rest.len());
            self.open.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if self.open.len() == SEGMENT_BYTES {
                self.full.push(Bytes::from(std::mem::take(&mut self.open)));
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_come_back_in_order_in_segments_of_one_size() {
        let mut s = Segments::default();
        let data: Vec<u8> = (0..(SEGMENT_BYTES * 2 + 10))
            .map(|i| (i % 251) as u8)
            .collect();
        s.write_all(&data[..7]).expect("in memory");
        s.write_all(&data[7..SEGMENT_BYTES + 3]).expect("in memory");
        s.write_all(&data[SEGMENT_BYTES + 3..]).expect("in memory");
        let parts = s.take();
        assert_eq!(
            parts.iter().map(Bytes::len).collect::<Vec<_>>(),
            vec![SEGMENT_BYTES, SEGMENT_BYTES, 10]
        );
        assert_eq!(parts.concat(), data);
        assert!(s.take().is_empty(), "taken bytes are not returned twice");
        s.write_all(b"footer").expect("in memory");
        assert_eq!(s.take(), vec![Bytes::from_static(b"footer")]);
    }
}
