//! Word-at-a-time byte search for the decoders' hot loops.
//!
//! Safe SWAR (8 bytes per step) so we need neither `unsafe` nor a `memchr` dependency; every
//! function returns the index of the *first* matching byte, exactly like a byte loop would.

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// High bit set in every byte of `v` that is zero. Bytes above the first zero byte may be
/// flagged spuriously (borrow), so only the lowest flag is meaningful.
#[inline(always)]
fn zero_bytes(v: u64) -> u64 {
    v.wrapping_sub(LO) & !v & HI
}

/// High bit set in every byte of `v` below `n` (n <= 0x80); same lowest-flag caveat.
#[inline(always)]
fn below(v: u64, n: u8) -> u64 {
    v.wrapping_sub(LO * u64::from(n)) & !v & HI
}

#[inline(always)]
fn first(mask: u64) -> usize {
    (mask.trailing_zeros() / 8) as usize
}

/// First index of `a`.
#[inline]
pub(crate) fn find1(hay: &[u8], a: u8) -> Option<usize> {
    let va = LO * u64::from(a);
    let (words, tail) = hay.as_chunks::<8>();
    for (k, w) in words.iter().enumerate() {
        let m = zero_bytes(u64::from_le_bytes(*w) ^ va);
        if m != 0 {
            return Some(k * 8 + first(m));
        }
    }
    let base = words.len() * 8;
    tail.iter().position(|&c| c == a).map(|p| base + p)
}

/// First index of `a` or `b`.
#[inline]
pub(crate) fn find2(hay: &[u8], a: u8, b: u8) -> Option<usize> {
    let va = LO * u64::from(a);
    let vb = LO * u64::from(b);
    let (words, tail) = hay.as_chunks::<8>();
    for (k, w) in words.iter().enumerate() {
        let x = u64::from_le_bytes(*w);
        let m = zero_bytes(x ^ va) | zero_bytes(x ^ vb);
        if m != 0 {
            return Some(k * 8 + first(m));
        }
    }
    let base = words.len() * 8;
    tail.iter()
        .position(|&c| c == a || c == b)
        .map(|p| base + p)
}

/// First index of a byte that ends the plain run of a JSON string: `"`, `\` or a control
/// character (< 0x20, which JSON forbids raw inside strings).
#[inline]
pub(crate) fn find_string_special(hay: &[u8]) -> Option<usize> {
    let vq = LO * u64::from(b'"');
    let vb = LO * u64::from(b'\\');
    let (words, tail) = hay.as_chunks::<8>();
    for (k, w) in words.iter().enumerate() {
        let x = u64::from_le_bytes(*w);
        let m = zero_bytes(x ^ vq) | zero_bytes(x ^ vb) | below(x, 0x20);
        if m != 0 {
            return Some(k * 8 + first(m));
        }
    }
    let base = words.len() * 8;
    tail.iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| base + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(hay: &[u8], f: impl Fn(u8) -> bool) -> Option<usize> {
        hay.iter().position(|&c| f(c))
    }

    #[test]
    fn every_position_and_length_matches_a_byte_loop() {
        // Needles at every position of buffers of every length up to 3 words, with bytes
        // around them that stress the borrow (0x00, 0x01, 0x80, 0xff, needle - 1).
        for len in 0..25 {
            for fill in [b'a', 0x00, 0x01, 0x80, 0xff, b',' - 1, b'"' + 1, 0x1f, 0x20] {
                let mut hay = vec![fill; len];
                assert_eq!(find1(&hay, b','), naive(&hay, |c| c == b','));
                assert_eq!(
                    find2(&hay, b',', b'\n'),
                    naive(&hay, |c| c == b',' || c == b'\n')
                );
                assert_eq!(
                    find_string_special(&hay),
                    naive(&hay, |c| c == b'"' || c == b'\\' || c < 0x20)
                );
                for pos in 0..len {
                    for needle in [b',', b'\n', b'"', b'\\', 0x00, 0x1f] {
                        let old = hay[pos];
                        hay[pos] = needle;
                        assert_eq!(find1(&hay, b','), naive(&hay, |c| c == b','));
                        assert_eq!(
                            find2(&hay, b',', b'\n'),
                            naive(&hay, |c| c == b',' || c == b'\n'),
                            "len {len} fill {fill} pos {pos} needle {needle}"
                        );
                        assert_eq!(
                            find_string_special(&hay),
                            naive(&hay, |c| c == b'"' || c == b'\\' || c < 0x20)
                        );
                        hay[pos] = old;
                    }
                }
            }
        }
    }

    #[test]
    fn finds_the_first_of_several_matches() {
        let hay = b"abcdefgh,ij\nkl,mnop";
        assert_eq!(find2(hay, b',', b'\n'), Some(8));
        assert_eq!(find2(&hay[9..], b',', b'\n'), Some(2));
        assert_eq!(find_string_special(b"hello \\\"world"), Some(6));
    }
}
