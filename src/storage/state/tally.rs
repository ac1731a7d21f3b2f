//! [`ExactWeight`]: an exact sum of vote weights, so totals equal a recount in any order.
//!
//! Floating-point addition is not associative: summing the same weights in another order can
//! give another total, and replacing a vote (subtract the old weight, add the new) would drift.
//! Every finite `f32` is an integer multiple of 2^-149 below 2^128, so the sum is kept as an
//! integer count of 2^-149 units in a 384-bit fixed-point number: 277 bits for the largest
//! weight plus 64 bits for up to 2^64 votes fit. Addition and subtraction are then exact, and
//! the total is a function of the set of live votes alone.
//!
//! ```text
//! encoding (48 bytes): limb[5] .. limb[0], each u64 big-endian; value = Σ limb[i]·2^(64i) · 2^-149
//! ```

use std::fmt;

/// Limbs of 64 bits.
const LIMBS: usize = 6;
/// Bytes of the encoding.
pub const EXACT_WEIGHT_BYTES: usize = LIMBS * 8;
/// The value of the lowest bit is 2^-UNIT_EXPONENT.
const UNIT_EXPONENT: i32 = 149;

/// An exact, non-negative sum of finite `f32` weights.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ExactWeight {
    limbs: [u64; LIMBS],
}

/// A subtraction that would take a sum below zero: the stored state is inconsistent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("weight sum would fall below zero")]
pub struct WeightUnderflow;

/// Splits a finite, non-negative weight into (mantissa, shift): weight = mantissa·2^shift·2^-149.
fn decompose(weight: f32) -> (u64, u32) {
    // The ingest refuses a vote whose weight is not finite and positive before it is counted
    // (`check_values`, in every build); reaching here with one is a bug, and a wrong total
    // would be worse than the halt this causes.
    assert!(
        weight.is_finite() && weight >= 0.0,
        "weights are checked finite and positive before they are counted"
    );
    let bits = weight.abs().to_bits();
    let exponent = (bits >> 23) & 0xff;
    let fraction = u64::from(bits & 0x7f_ffff);
    if exponent == 0 {
        (fraction, 0)
    } else {
        (fraction | 1 << 23, exponent - 1)
    }
}

impl ExactWeight {
    /// The empty sum.
    pub const ZERO: Self = Self { limbs: [0; LIMBS] };

    /// Adds `weight` (finite, non-negative).
    pub fn add(&mut self, weight: f32) {
        let (mantissa, shift) = decompose(weight);
        let (limb, offset) = ((shift / 64) as usize, shift % 64);
        let wide = u128::from(mantissa) << offset;
        let mut carry = 0u128;
        for (i, part) in [wide as u64, (wide >> 64) as u64].into_iter().enumerate() {
            let sum = u128::from(self.limbs[limb + i]) + u128::from(part) + carry;
            self.limbs[limb + i] = sum as u64;
            carry = sum >> 64;
        }
        let mut i = limb + 2;
        while carry != 0 && i < LIMBS {
            let sum = u128::from(self.limbs[i]) + carry;
            self.limbs[i] = sum as u64;
            carry = sum >> 64;
            i += 1;
        }
        // 2^64 votes of the largest f32 still fit: a carry out would need more.
        assert_eq!(carry, 0, "exact weight sum overflowed 384 bits");
    }

    /// Subtracts `weight` (finite, non-negative), which must have been added before.
    pub fn sub(&mut self, weight: f32) -> Result<(), WeightUnderflow> {
        let (mantissa, shift) = decompose(weight);
        let (limb, offset) = ((shift / 64) as usize, shift % 64);
        let wide = u128::from(mantissa) << offset;
        let mut limbs = self.limbs;
        let mut borrow = false;
        for (i, slot) in limbs.iter_mut().enumerate().skip(limb) {
            let part = match i - limb {
                0 => wide as u64,
                1 => (wide >> 64) as u64,
                _ => 0,
            };
            let (d1, b1) = slot.overflowing_sub(part);
            let (d2, b2) = d1.overflowing_sub(u64::from(borrow));
            *slot = d2;
            borrow = b1 || b2;
        }
        if borrow {
            return Err(WeightUnderflow);
        }
        self.limbs = limbs;
        Ok(())
    }

    /// Returns true if and only if the sum is zero.
    pub fn is_zero(&self) -> bool {
        self.limbs.iter().all(|&l| l == 0)
    }

    /// Returns the sum as the nearest `f64` (correct to within one unit in the last place).
    pub fn to_f64(&self) -> f64 {
        let Some(top) = self.limbs.iter().rposition(|&l| l != 0) else {
            return 0.0;
        };
        // The two highest non-zero limbs carry more than f64's 53 bits of precision.
        let low = if top > 0 { self.limbs[top - 1] } else { 0 };
        let high = (u128::from(self.limbs[top]) << 64) | u128::from(low);
        let exponent = 64 * (top as i32 - 1) - UNIT_EXPONENT;
        (high as f64) * 2f64.powi(exponent)
    }

    /// Returns the 48-byte encoding.
    pub fn to_bytes(&self) -> [u8; EXACT_WEIGHT_BYTES] {
        let mut out = [0u8; EXACT_WEIGHT_BYTES];
        for (chunk, limb) in out.chunks_exact_mut(8).zip(self.limbs.iter().rev()) {
            chunk.copy_from_slice(&limb.to_be_bytes());
        }
        out
    }

    /// Decodes [`to_bytes`](Self::to_bytes); `None` if `bytes` is not 48 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != EXACT_WEIGHT_BYTES {
            return None;
        }
        let mut limbs = [0u64; LIMBS];
        for (limb, chunk) in limbs.iter_mut().rev().zip(bytes.chunks_exact(8)) {
            *limb = u64::from_be_bytes(chunk.try_into().ok()?);
        }
        Some(Self { limbs })
    }
}

impl fmt::Debug for ExactWeight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExactWeight({})", self.to_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_are_exact_and_order_independent() {
        let weights = [0.1f32, 1e-40, 3.5, 100.0, 1e-7, 7.25, f32::MIN_POSITIVE, 0.3];
        let mut forward = ExactWeight::ZERO;
        weights.iter().for_each(|&w| forward.add(w));
        let mut backward = ExactWeight::ZERO;
        weights.iter().rev().for_each(|&w| backward.add(w));
        assert_eq!(forward, backward);
        let expected: f64 = weights.iter().map(|&w| f64::from(w)).sum();
        assert!((forward.to_f64() - expected).abs() <= expected * 1e-15);
        for &w in &weights {
            forward.sub(w).unwrap();
        }
        assert!(forward.is_zero());
        assert_eq!(forward.sub(1.0), Err(WeightUnderflow));
    }

    #[test]
    fn encoding_round_trips() {
        let mut sum = ExactWeight::ZERO;
        for i in 1..1000 {
            sum.add(i as f32 * 0.37);
        }
        assert_eq!(ExactWeight::from_bytes(&sum.to_bytes()), Some(sum));
        assert_eq!(ExactWeight::from_bytes(&[0; 47]), None);
        let mut one = ExactWeight::ZERO;
        one.add(1.0);
        assert_eq!(one.to_f64(), 1.0);
        let mut max = ExactWeight::ZERO;
        max.add(f32::MAX);
        assert_eq!(max.to_f64(), f64::from(f32::MAX));
    }
}
