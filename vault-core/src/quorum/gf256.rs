//! Arithmetic in GF(256) with the Rijndael polynomial x⁸ + x⁴ + x³ + x + 1, and Lagrange
//! interpolation over it, as SLIP-39 specifies.
//!
//! Log/exp tables (generator 3) are used, as in the reference implementation. Table lookups
//! indexed by secret bytes are not constant-time; the threat this admits is a local cache-timing
//! observer during a ceremony, who could equally read the recombined secret from memory. The
//! tables are built at compile time.

/// `EXP[i] = 3^i`, `LOG[3^i] = i`.
const TABLES: ([u8; 255], [u8; 256]) = build_tables();

const fn build_tables() -> ([u8; 255], [u8; 256]) {
    let mut exp = [0u8; 255];
    let mut log = [0u8; 256];
    let mut poly: u16 = 1;
    let mut i = 0;
    while i < 255 {
        exp[i] = poly as u8;
        log[poly as usize] = i as u8;
        // Multiply by 3 = x + 1, reduce by the Rijndael polynomial.
        poly = (poly << 1) ^ poly;
        if poly & 0x100 != 0 {
            poly ^= 0x11b;
        }
        i += 1;
    }
    (exp, log)
}

fn exp(i: usize) -> u8 {
    TABLES.0[i % 255]
}

fn log(x: u8) -> usize {
    usize::from(TABLES.1[usize::from(x)])
}

/// Interpolates the polynomial through `points` (distinct x, equal-length values) at `x`.
///
/// The caller guarantees distinct x-coordinates and equal lengths.
pub(super) fn interpolate(points: &[(u8, &[u8])], x: u8) -> zeroize::Zeroizing<Vec<u8>> {
    if let Some((_, value)) = points.iter().find(|(px, _)| *px == x) {
        return zeroize::Zeroizing::new(value.to_vec());
    }
    let len = points[0].1.len();
    let log_product: usize = points.iter().map(|(px, _)| log(px ^ x)).sum();
    let mut result = zeroize::Zeroizing::new(vec![0u8; len]);
    for (i, (xi, value)) in points.iter().enumerate() {
        let denominator: usize = log(xi ^ x)
            + points
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, (xj, _))| log(xi ^ xj))
                .sum::<usize>();
        // basis_i(x) = prod_{j != i} (x - xj) / (xi - xj), in logs, mod 255.
        let log_basis = (log_product + 255 * points.len() * 2 - denominator) % 255;
        for (out, byte) in result.iter_mut().zip(value.iter()) {
            if *byte != 0 {
                *out ^= exp(log(*byte) + log_basis);
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mul(a: u8, b: u8) -> u8 {
        if a == 0 || b == 0 {
            0
        } else {
            exp(log(a) + log(b))
        }
    }

    #[test]
    fn tables_are_a_bijection_and_multiplication_matches_carryless_reduction() {
        let mut seen = [false; 256];
        for i in 0..255 {
            let v = exp(i);
            assert!(!seen[usize::from(v)]);
            seen[usize::from(v)] = true;
            assert_eq!(log(v), i);
        }
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let mut product: u16 = 0;
                let (mut x, mut y) = (u16::from(a), b);
                while y != 0 {
                    if y & 1 != 0 {
                        product ^= x;
                    }
                    x <<= 1;
                    if x & 0x100 != 0 {
                        x ^= 0x11b;
                    }
                    y >>= 1;
                }
                assert_eq!(mul(a, b), product as u8, "{a} * {b}");
            }
        }
    }

    #[test]
    fn interpolation_recovers_a_line() {
        // f(x) = 7 + 5x: f(1) = 7 ^ 5, f(2) = 7 ^ mul(5, 2)
        let f1 = [7 ^ mul(5, 1)];
        let f2 = [7 ^ mul(5, 2)];
        let at_zero = interpolate(&[(1, &f1), (2, &f2)], 0);
        assert_eq!(at_zero.as_slice(), &[7]);
    }
}
