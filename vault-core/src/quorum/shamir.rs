//! Shamir's secret sharing as SLIP-39 defines it: the secret at x = 255, a digest share at
//! x = 254 (4 bytes of HMAC-SHA256 keyed by the random part, then the random part), and the
//! shares at x = 0..n-1.

use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use super::QuorumError;
use super::gf256::interpolate;

const SECRET_X: u8 = 255;
const DIGEST_X: u8 = 254;
const DIGEST_BYTES: usize = 4;

fn digest(random_part: &[u8], secret: &[u8]) -> [u8; DIGEST_BYTES] {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, random_part);
    let tag = ring::hmac::sign(&key, secret);
    let mut out = [0u8; DIGEST_BYTES];
    out.copy_from_slice(&tag.as_ref()[..DIGEST_BYTES]);
    out
}

fn random(len: usize) -> Result<Zeroizing<Vec<u8>>, QuorumError> {
    let mut bytes = Zeroizing::new(vec![0u8; len]);
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| QuorumError::Random)?;
    Ok(bytes)
}

/// Splits `secret` into `count` shares with `threshold`; share i is at x = i.
///
/// The polynomial is fixed by `threshold - 2` uniformly random shares (every byte uniform over
/// the whole field, zero included), the digest share and the secret.
pub(super) fn split(
    threshold: u8,
    count: u8,
    secret: &[u8],
) -> Result<Vec<Zeroizing<Vec<u8>>>, QuorumError> {
    if threshold == 1 {
        return Ok((0..count)
            .map(|_| Zeroizing::new(secret.to_vec()))
            .collect());
    }
    let random_count = threshold - 2;
    let mut shares: Vec<Zeroizing<Vec<u8>>> = (0..random_count)
        .map(|_| random(secret.len()))
        .collect::<Result<_, _>>()?;
    let random_part = random(secret.len() - DIGEST_BYTES)?;
    let mut digest_share = Zeroizing::new(digest(&random_part, secret).to_vec());
    digest_share.extend_from_slice(&random_part);
    let mut base: Vec<(u8, &[u8])> = shares
        .iter()
        .enumerate()
        .map(|(i, s)| (i as u8, s.as_slice()))
        .collect();
    base.push((DIGEST_X, &digest_share));
    base.push((SECRET_X, secret));
    let derived: Vec<Zeroizing<Vec<u8>>> = (random_count..count)
        .map(|x| interpolate(&base, x))
        .collect();
    shares.extend(derived);
    Ok(shares)
}

/// Recovers the secret from exactly `threshold` points and checks the digest.
/// Returns `None` when the digest does not match.
pub(super) fn recover(threshold: u8, points: &[(u8, &[u8])]) -> Option<Zeroizing<Vec<u8>>> {
    if threshold == 1 {
        return Some(Zeroizing::new(points[0].1.to_vec()));
    }
    let secret = interpolate(points, SECRET_X);
    let digest_share = interpolate(points, DIGEST_X);
    let (claimed, random_part) = digest_share.split_at(DIGEST_BYTES);
    let expected = digest(random_part, &secret);
    let difference = claimed
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    (difference == 0).then_some(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The digest check compares all four bytes: a change to the digest share that leaves the
    /// secret as it is is refused, including one that changes two bytes by the same amount
    /// (which an accumulation by XOR would cancel out).
    #[test]
    fn any_change_to_the_digest_share_is_refused() {
        let secret = [7u8; 16];
        let shares = split(2, 2, &secret).unwrap();
        let genuine = [(0u8, shares[0].as_slice()), (1, shares[1].as_slice())];
        assert_eq!(recover(2, &genuine).unwrap().as_slice(), &secret);
        let zeros = [0u8; 16];
        for delta in [
            [1u8, 0, 0, 0],
            [0x5a, 0x5a, 0, 0],
            [0, 0, 0, 0x80],
            [0xff; 4],
        ] {
            let mut change = [0u8; 16];
            change[..DIGEST_BYTES].copy_from_slice(&delta);
            // The line through (255, 0) and (254, change) moves the digest share, not the secret.
            let line = [(SECRET_X, &zeros[..]), (DIGEST_X, &change[..])];
            let moved: Vec<Vec<u8>> = (0..2u8)
                .map(|x| {
                    let shift = interpolate(&line, x);
                    let share = &shares[usize::from(x)];
                    share.iter().zip(shift.iter()).map(|(a, b)| a ^ b).collect()
                })
                .collect();
            let points = [(0u8, moved[0].as_slice()), (1, moved[1].as_slice())];
            assert_eq!(interpolate(&points, SECRET_X).as_slice(), &secret);
            assert!(recover(2, &points).is_none(), "digest changed by {delta:?}");
        }
    }
}
