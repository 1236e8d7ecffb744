//! RSA key generation: random primes found by rejection sampling behind a fast, constant-time sieve, with
//! aws-lc's own Miller-Rabin test deciding primality.
//!
//! # Why not aws-lc's `RSA_generate_key_ex`
//! Nearly all of a PKI's cost is RSA key generation, and nearly all of that is discarding composite candidates.
//! aws-lc draws each candidate at random and first divides it by its 1024 smallest odd primes, one prime at a time
//! through a constant-time word-by-word reduction (`bn_mod_u16_consttime`, one of the two hot spots of a profile of
//! `bosun init phase certs`, beside Miller-Rabin).
//! Here the same trial division costs about 5 µs a candidate: the primes are packed into groups whose product fits
//! 58 bits, a candidate's residue modulo a group is a dot product of its limbs with precomputed powers of 2^64
//! modulo the product, and divisibility by each prime of the group is one multiplication and one comparison. An
//! RSA-2048 key then costs 0.65 × the CPU of aws-lc's (56 ms against 86 ms on the 2-core build machine,
//! `cargo bench -p bosun-pki`).
//!
//! # What is kept from aws-lc, and why that is safe
//! - Candidates are drawn independently from the operating system's generator (through ring), never searched for
//!   among consecutive integers: a composite's value may then leak through timing without telling anything about the prime finally
//!   kept. This is the argument aws-lc's own key generation rests on.
//! - Every candidate that survives the sieve is tested by aws-lc's `BN_primality_test` with
//!   `BN_prime_checks_for_generation`, the constant-time, blinded Miller-Rabin test and the iteration count that
//!   aws-lc's `RSA_generate_key_ex` uses.
//! - The sieve handles every candidate in the same time whatever its value: multiplications, additions and masks,
//!   no data-dependent branch or division. Only its verdict (composite or not) is used in a branch.
//! - The private exponents are computed without divisions by secret values either: e = 65537 is public and prime,
//!   so e⁻¹ mod m = (1 + m·t) / e with t = −m⁻¹ mod e, an inverse modulo a small public prime and an exact division
//!   by a public constant. q⁻¹ mod p is aws-lc's constant-time modular exponentiation q^(p−2) mod p.
//!
//! # Key shape
//! p and q have the top two bits set, so n has exactly the requested size (as Go's and aws-lc's keys do), differ in
//! their top 100 bits (FIPS 186-5 A.1.3), and have gcd(p−1, e) = gcd(q−1, e) = 1. The private exponent is
//! d = e⁻¹ mod (p−1)(q−1), which satisfies e·d ≡ 1 mod λ(n) as PKCS #1 requires (it is at most one bit longer than
//! the minimal one modulo λ(n); signing uses the CRT exponents dp, dq, which are the minimal ones either way).
//!
//! # Checks on every key
//! The encoded key is parsed by aws-lc, whose parser runs `RSA_check_key` (n = p·q, e·d ≡ 1 modulo p−1 and q−1, the
//! CRT values), and then signs a message that ring verifies against n and e: a key that reaches a caller has been
//! used once.
//!
//! This is the one module of bosun allowed `unsafe`: the calls into aws-lc's bignum functions (through aws-lc-sys,
//! the library rcgen already links) and the volatile writes that wipe key material. Each block says why it holds.
#![allow(unsafe_code)]

use std::os::raw::c_int;
use std::ptr::NonNull;
use std::sync::OnceLock;

use aws_lc_sys as sys;

use crate::der;

/// The public exponent, as every Kubernetes tool uses.
const E: u64 = 65_537;
/// How many odd primes the sieve divides by (3 to 8167, as aws-lc for these sizes). Measured on the 2-core build
/// machine: 2048 primes saved about as much Miller-Rabin time as they added to the sieve, 4096 cost more.
const SIEVE_PRIMES: usize = 1024;
/// Candidates tried for one prime, per bit, before giving up: a hundred times the expected number (about
/// 0.35 × bits odd candidates), far beyond any run of bad luck, so giving up means the random generator is broken.
const TRIES_PER_BIT: usize = 35;

/// Why a key could not be made (the random generator or aws-lc failed, or a self-check failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsaError(pub String);

/// Makes an RSA key of `bits` (2048, 3072 or 4096) and returns it as PKCS #8 DER.
pub fn generate_pkcs8(bits: usize) -> Result<Secret, RsaError> {
    if !matches!(bits, 2048 | 3072 | 4096) {
        return Err(RsaError(format!(
            "an RSA key of {bits} bits is not supported"
        )));
    }
    let limbs = bits / 128;
    let sieve = Sieve::for_limbs(limbs);
    let ctx = BnCtx::new()?;
    let mut p = random_prime(sieve, &ctx, None)?;
    let mut q = random_prime(sieve, &ctx, Some(&p))?;
    if compare(&p.0, &q.0) == std::cmp::Ordering::Less {
        std::mem::swap(&mut p, &mut q);
    }
    let parts = KeyParts::from_primes(&p, &q, &ctx)?;
    let pkcs8 = parts.pkcs8();
    self_check(&parts, &pkcs8)?;
    Ok(pkcs8)
}

/// Uses the key once: ring parses it (checking n = p·q and the CRT values against each other), signs a message, and
/// the signature must verify against n and e alone.
fn self_check(parts: &KeyParts, pkcs8: &Secret) -> Result<(), RsaError> {
    let failed = |what: &str| RsaError(format!("the new key failed its self-check: {what}"));
    let key = ring::signature::RsaKeyPair::from_pkcs8(&pkcs8.0)
        .map_err(|error| failed(&format!("it does not parse ({error})")))?;
    let message = b"bosun RSA key self-check";
    let mut signature = vec![0u8; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        message,
        &mut signature,
    )
    .map_err(|_| failed("it cannot sign"))?;
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        parts.public_key(),
    )
    .verify(message, &signature)
    .map_err(|_| failed("its signature does not verify"))
}

/// Bytes that are zeroed when dropped: limbs and encodings of private keys.
pub struct Secret(pub Vec<u8>);

impl Drop for Secret {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

struct Limbs(Vec<u64>);

impl Drop for Limbs {
    fn drop(&mut self) {
        for limb in self.0.iter_mut() {
            // A volatile write, so the zeroing is not optimised away as a store to memory about to be freed.
            // SAFETY: `limb` is a valid, aligned, exclusive reference.
            unsafe { std::ptr::write_volatile(limb, 0) };
        }
    }
}

fn wipe(bytes: &mut [u8]) {
    for byte in bytes.iter_mut() {
        // SAFETY: `byte` is a valid, exclusive reference.
        unsafe { std::ptr::write_volatile(byte, 0) };
    }
}

/// The constant tables of the sieve for candidates of one size.
///
/// The moduli (the odd primes from 3, then e) are packed into groups whose product stays below 2^58. A candidate's
/// residue modulo a group's product is congruent to Σ limbₖ · (2^(64k) mod product), a sum of 64×64-bit products
/// that fits 128 bits; each prime of the group then reduces that sum's two halves. So a candidate costs one
/// multiplication per limb per group and a few per prime, with no division.
struct Sieve {
    /// Limbs (64-bit, little-endian) of a candidate.
    limbs: usize,
    /// The moduli: the odd primes from 3, then e (last, alone in its group).
    moduli: Vec<u64>,
    /// modulus⁻¹ mod 2^128, for each modulus.
    inverses: Vec<u128>,
    /// ⌊(2^128 − 1) / modulus⌋, for each modulus: the largest image of a multiple under the inverse.
    limits: Vec<u128>,
    /// For each group, the end of its run of moduli (groups are consecutive runs).
    group_ends: Vec<usize>,
    /// `weights[g * limbs + k]` = 2^(64k) mod (the product of group g's moduli).
    weights: Vec<u64>,
}

/// Bound on a group's product: 32 limbs times 2^64 times the weight must stay below 2^128.
const GROUP_BOUND: u128 = 1 << 58;

impl Sieve {
    fn for_limbs(limbs: usize) -> &'static Sieve {
        static TABLES: [OnceLock<Sieve>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
        let slot = match limbs {
            16 => &TABLES[0],
            24 => &TABLES[1],
            _ => &TABLES[2],
        };
        slot.get_or_init(|| Sieve::new(limbs))
    }

    fn new(limbs: usize) -> Sieve {
        let mut moduli = small_odd_primes(SIEVE_PRIMES);
        moduli.push(E);
        let inverses = moduli
            .iter()
            .map(|&modulus| inverse_mod_power_of_two(u128::from(modulus)))
            .collect();
        let limits = moduli
            .iter()
            .map(|&modulus| u128::MAX / u128::from(modulus))
            .collect();
        let mut group_ends = Vec::new();
        let mut products = Vec::new();
        let mut product = 1u128;
        for (index, &modulus) in moduli.iter().enumerate() {
            let last = index == moduli.len() - 1;
            if product * u128::from(modulus) >= GROUP_BOUND || (last && product > 1) {
                group_ends.push(index);
                products.push(product);
                product = 1;
            }
            product *= u128::from(modulus);
        }
        group_ends.push(moduli.len());
        products.push(product);
        let mut weights = Vec::with_capacity(products.len() * limbs);
        for &product in &products {
            let mut weight = 1u128;
            for _ in 0..limbs {
                weights.push(weight as u64);
                weight = (weight << 64) % product;
            }
        }
        Sieve {
            limbs,
            moduli,
            inverses,
            limits,
            group_ends,
            weights,
        }
    }

    /// Whether `candidate` (odd) is divisible by none of the small primes and is not 1 modulo e (so that
    /// gcd(candidate − 1, e) = 1). Takes the same time for every candidate of this size.
    ///
    /// Divisibility of a group's 128-bit sum s by a prime p is tested without computing s mod p: p is odd, so
    /// multiplying by p⁻¹ mod 2^128 maps the multiples of p below 2^128 exactly onto the values up to
    /// ⌊(2^128 − 1) / p⌋.
    fn passes(&self, candidate: &[u64]) -> bool {
        let mut rejected = 0u64;
        let mut first = 0;
        let mut sum = 0u128;
        for (group, &end) in self.group_ends.iter().enumerate() {
            let weights = &self.weights[group * self.limbs..(group + 1) * self.limbs];
            sum = candidate
                .iter()
                .zip(weights)
                .map(|(&limb, &weight)| u128::from(limb) * u128::from(weight))
                .sum();
            for j in first..end {
                rejected |= u64::from(sum.wrapping_mul(self.inverses[j]) <= self.limits[j]);
            }
            first = end;
        }
        // e is alone in the last group, whose sum is still at hand: reject a candidate that is 1 modulo e.
        let e_index = self.moduli.len() - 1;
        rejected |= u64::from(
            sum.wrapping_sub(1).wrapping_mul(self.inverses[e_index]) <= self.limits[e_index],
        );
        rejected == 0
    }
}

/// `value mod modulus` for value < 2^64 and modulus < 2^32, by Barrett reduction without branches.
fn reduce(value: u64, modulus: u64, reciprocal: u64) -> u64 {
    let quotient = ((u128::from(value) * u128::from(reciprocal)) >> 64) as u64;
    let mut residue = value - quotient * modulus;
    // The estimate is short by at most two.
    for _ in 0..2 {
        let (less, borrow) = residue.overflowing_sub(modulus);
        let keep = u64::from(borrow).wrapping_neg();
        residue = (residue & keep) | (less & !keep);
    }
    residue
}

/// odd⁻¹ mod 2^128 by Newton's iteration: x ← x(2 − odd·x) doubles the number of correct low bits, and x = odd is
/// correct in the low three (odd² ≡ 1 mod 8).
fn inverse_mod_power_of_two(odd: u128) -> u128 {
    let mut inverse = odd;
    for _ in 0..6 {
        inverse = inverse.wrapping_mul(2u128.wrapping_sub(odd.wrapping_mul(inverse)));
    }
    inverse
}

fn small_odd_primes(count: usize) -> Vec<u64> {
    let mut primes = Vec::with_capacity(count);
    let mut candidate = 3u64;
    while primes.len() < count {
        if primes
            .iter()
            .take_while(|&&prime| prime * prime <= candidate)
            .all(|&prime| !candidate.is_multiple_of(prime))
        {
            primes.push(candidate);
        }
        candidate += 2;
    }
    primes
}

fn random_prime(sieve: &Sieve, ctx: &BnCtx, other: Option<&Limbs>) -> Result<Limbs, RsaError> {
    let limbs = sieve.limbs;
    let mut bytes = Secret(vec![0u8; limbs * 8]);
    let mut candidate = Limbs(vec![0u64; limbs]);
    for _ in 0..TRIES_PER_BIT * limbs * 64 {
        random_bytes(&mut bytes.0)?;
        for (limb, chunk) in candidate.0.iter_mut().zip(bytes.0.rchunks_exact(8)) {
            let mut array = [0u8; 8];
            array.copy_from_slice(chunk);
            *limb = u64::from_be_bytes(array);
        }
        candidate.0[limbs - 1] |= 0xc000_0000_0000_0000;
        candidate.0[0] |= 1;
        if !sieve.passes(&candidate.0) {
            continue;
        }
        if let Some(other) = other {
            if !far_apart(&candidate.0, &other.0) {
                continue;
            }
        }
        let number = Bn::from_limbs(&candidate.0)?;
        if number.is_probable_prime(ctx)? {
            return Ok(candidate);
        }
    }
    Err(RsaError(format!(
        "no {}-bit prime found in {} random candidates; the random generator is failing",
        limbs * 64,
        TRIES_PER_BIT * limbs * 64
    )))
}

/// Whether |a − b| ≥ 2^(bits − 100), FIPS 186-5's bound for the distance of p and q: some bit at or above
/// position bits − 100 of the difference is set.
fn far_apart(a: &[u64], b: &[u64]) -> bool {
    let (high, low) = if compare(a, b) == std::cmp::Ordering::Less {
        (b, a)
    } else {
        (a, b)
    };
    let difference = Limbs(sub(high, low));
    let bits = a.len() * 64;
    let first = bits - 100;
    (first..bits).any(|bit| difference.0[bit / 64] >> (bit % 64) & 1 == 1)
}

fn compare(a: &[u64], b: &[u64]) -> std::cmp::Ordering {
    a.iter().rev().cmp(b.iter().rev())
}

/// a − b for a ≥ b of equal length.
fn sub(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut borrow = 0u64;
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let (partial, first) = x.overflowing_sub(y);
            let (difference, second) = partial.overflowing_sub(borrow);
            borrow = u64::from(first | second);
            difference
        })
        .collect()
}

/// a · b, schoolbook, in time that depends only on the lengths.
fn mul(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut product = vec![0u64; a.len() + b.len()];
    for (i, &x) in a.iter().enumerate() {
        let mut carry = 0u128;
        for (j, &y) in b.iter().enumerate() {
            let sum = u128::from(x) * u128::from(y) + u128::from(product[i + j]) + carry;
            product[i + j] = sum as u64;
            carry = sum >> 64;
        }
        product[i + b.len()] = carry as u64;
    }
    product
}

/// e⁻¹ mod m for an m with gcd(m, e) = 1, as (1 + m·t) / e with t = −m⁻¹ mod e. Constant time: a reduction modulo
/// e, an exponentiation modulo e by the public e − 2, a multiplication by a small number and an exact division by
/// e (Hensel's, from the low limb, with e⁻¹ mod 2^64).
fn inverse_of_e(m: &[u64]) -> Vec<u64> {
    let reciprocal = u64::MAX / E;
    let mut residue = 0u64;
    for chunk in m
        .iter()
        .rev()
        .flat_map(|limb| [*limb >> 32, *limb & 0xffff_ffff])
    {
        residue = reduce((residue << 32) | chunk, E, reciprocal);
    }
    // m⁻¹ mod e = m^(e−2) mod e (Fermat); the exponent is public, so its bits may steer the loop.
    let mut inverse = 1u64;
    let mut base = residue;
    let mut exponent = E - 2;
    while exponent > 0 {
        let product = reduce(inverse * base, E, reciprocal);
        let take = (exponent & 1).wrapping_neg();
        inverse = (product & take) | (inverse & !take);
        base = reduce(base * base, E, reciprocal);
        exponent >>= 1;
    }
    let t = E - inverse;
    // x = m·t + 1, one limb longer than m.
    let mut x = Vec::with_capacity(m.len() + 1);
    let mut carry = 1u128;
    for &limb in m {
        let sum = u128::from(limb) * u128::from(t) + carry;
        x.push(sum as u64);
        carry = sum >> 64;
    }
    x.push(carry as u64);
    let x = Limbs(x);
    let e_inverse = inverse_mod_power_of_two(u128::from(E)) as u64;
    let mut quotient = Vec::with_capacity(x.0.len());
    let mut borrow = 0u64;
    for &limb in &x.0 {
        let (value, under) = limb.overflowing_sub(borrow);
        let digit = value.wrapping_mul(e_inverse);
        quotient.push(digit);
        borrow = ((u128::from(digit) * u128::from(E)) >> 64) as u64 + u64::from(under);
    }
    quotient.truncate(m.len());
    quotient
}

/// The values of a private key (limbs, little-endian).
struct KeyParts {
    n: Limbs,
    d: Limbs,
    p: Vec<u8>,
    q: Vec<u8>,
    dp: Limbs,
    dq: Limbs,
    qinv: Vec<u8>,
}

impl KeyParts {
    fn from_primes(p: &Limbs, q: &Limbs, ctx: &BnCtx) -> Result<KeyParts, RsaError> {
        let n = Limbs(mul(&p.0, &q.0));
        let mut one = vec![0u64; p.0.len()];
        one[0] = 1;
        let p1 = Limbs(sub(&p.0, &one));
        let q1 = Limbs(sub(&q.0, &one));
        let phi = Limbs(mul(&p1.0, &q1.0));
        let d = Limbs(inverse_of_e(&phi.0));
        let dp = Limbs(inverse_of_e(&p1.0));
        let dq = Limbs(inverse_of_e(&q1.0));
        // q⁻¹ mod p = q^(p−2) mod p.
        let mut two = vec![0u64; p.0.len()];
        two[0] = 2;
        let p2 = Limbs(sub(&p.0, &two));
        let p_bn = Bn::from_limbs(&p.0)?;
        let qinv = p_bn.mod_exp_consttime(&Bn::from_limbs(&q.0)?, &Bn::from_limbs(&p2.0)?, ctx)?;
        Ok(KeyParts {
            n,
            d,
            p: be_bytes(&p.0),
            q: be_bytes(&q.0),
            dp,
            dq,
            qinv: qinv.to_be_bytes(p.0.len() * 8)?,
        })
    }

    /// PKCS #8 PrivateKeyInfo around a PKCS #1 RSAPrivateKey.
    fn pkcs8(&self) -> Secret {
        let fields: [Secret; 9] = [
            Secret(vec![0]),
            Secret(be_bytes(&self.n.0)),
            Secret(E.to_be_bytes().to_vec()),
            Secret(be_bytes(&self.d.0)),
            Secret(self.p.clone()),
            Secret(self.q.clone()),
            Secret(be_bytes(&self.dp.0)),
            Secret(be_bytes(&self.dq.0)),
            Secret(self.qinv.clone()),
        ];
        let mut body = Secret(Vec::new());
        for field in &fields {
            let encoded = Secret(integer(&field.0));
            body.0.extend_from_slice(&encoded.0);
        }
        let rsa_private_key = Secret(der::write(der::TAG_SEQUENCE, &body.0));
        let mut algorithm = der::write(der::TAG_OID, der::OID_RSA_ENCRYPTION);
        algorithm.extend_from_slice(&[0x05, 0x00]);
        let mut info = Secret(integer(&[0]));
        info.0.extend(der::write(der::TAG_SEQUENCE, &algorithm));
        let octets = Secret(der::write(der::TAG_OCTET_STRING, &rsa_private_key.0));
        info.0.extend_from_slice(&octets.0);
        Secret(der::write(der::TAG_SEQUENCE, &info.0))
    }

    /// PKCS #1 RSAPublicKey, what ring verifies against.
    fn public_key(&self) -> Vec<u8> {
        let mut body = integer(&be_bytes(&self.n.0));
        body.extend(integer(&E.to_be_bytes()));
        der::write(der::TAG_SEQUENCE, &body)
    }
}

impl Drop for KeyParts {
    fn drop(&mut self) {
        wipe(&mut self.p);
        wipe(&mut self.q);
        wipe(&mut self.qinv);
    }
}

fn be_bytes(limbs: &[u64]) -> Vec<u8> {
    limbs
        .iter()
        .rev()
        .flat_map(|limb| limb.to_be_bytes())
        .collect()
}

/// A DER INTEGER for a non-negative big-endian magnitude.
fn integer(magnitude: &[u8]) -> Vec<u8> {
    // Leading zeros go, but one digit stays (zero is one zero byte).
    let last = magnitude.len().saturating_sub(1);
    let start = magnitude.iter().position(|&byte| byte != 0).unwrap_or(last);
    let digits = &magnitude[start.min(last)..];
    let mut content = Vec::with_capacity(digits.len() + 1);
    if digits.first().is_some_and(|&byte| byte & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(digits);
    let encoded = der::write(der::TAG_INTEGER, &content);
    wipe(&mut content);
    encoded
}

/// Candidates come from the operating system's generator through ring, bosun's source of randomness everywhere.
fn random_bytes(buffer: &mut [u8]) -> Result<(), RsaError> {
    use ring::rand::SecureRandom;
    static SYSTEM: OnceLock<ring::rand::SystemRandom> = OnceLock::new();
    SYSTEM
        .get_or_init(ring::rand::SystemRandom::new)
        .fill(buffer)
        .map_err(|_| RsaError("the system's random generator failed".to_owned()))
}

/// An aws-lc BN_CTX (scratch space for its bignum functions).
struct BnCtx(NonNull<sys::BN_CTX>);

impl BnCtx {
    fn new() -> Result<BnCtx, RsaError> {
        // SAFETY: BN_CTX_new has no preconditions; a null result is handled.
        NonNull::new(unsafe { sys::BN_CTX_new() })
            .map(BnCtx)
            .ok_or_else(|| RsaError("out of memory".to_owned()))
    }
}

impl Drop for BnCtx {
    fn drop(&mut self) {
        // SAFETY: the context was made by BN_CTX_new and is freed once.
        unsafe { sys::BN_CTX_free(self.0.as_ptr()) };
    }
}

/// An aws-lc BIGNUM, cleared when dropped.
struct Bn(NonNull<sys::BIGNUM>);

impl Bn {
    fn from_limbs(limbs: &[u64]) -> Result<Bn, RsaError> {
        let bytes = Secret(be_bytes(limbs));
        // SAFETY: the pointer and length describe `bytes`; a null `ret` asks for a new BIGNUM, owned by the result.
        let raw = unsafe { sys::BN_bin2bn(bytes.0.as_ptr(), bytes.0.len(), std::ptr::null_mut()) };
        NonNull::new(raw)
            .map(Bn)
            .ok_or_else(|| RsaError("out of memory".to_owned()))
    }

    fn is_probable_prime(&self, ctx: &BnCtx) -> Result<bool, RsaError> {
        let mut verdict: c_int = 0;
        // SAFETY: all pointers are valid for the call; no callback.
        let ok = unsafe {
            sys::BN_primality_test(
                &mut verdict,
                self.0.as_ptr(),
                sys::BN_prime_checks_for_generation,
                ctx.0.as_ptr(),
                0,
                std::ptr::null_mut(),
            )
        };
        if ok == 1 {
            Ok(verdict == 1)
        } else {
            Err(RsaError("aws-lc's primality test failed".to_owned()))
        }
    }

    /// base^exponent mod self, in constant time (self odd, base < self).
    fn mod_exp_consttime(&self, base: &Bn, exponent: &Bn, ctx: &BnCtx) -> Result<Bn, RsaError> {
        // SAFETY: BN_new has no preconditions; a null result is handled.
        let result = NonNull::new(unsafe { sys::BN_new() })
            .map(Bn)
            .ok_or_else(|| RsaError("out of memory".to_owned()))?;
        // SAFETY: the modulus and context are valid; a null result is handled.
        let mont = unsafe { sys::BN_MONT_CTX_new_consttime(self.0.as_ptr(), ctx.0.as_ptr()) };
        if mont.is_null() {
            return Err(RsaError(
                "aws-lc cannot set up Montgomery arithmetic".to_owned(),
            ));
        }
        // SAFETY: every pointer is valid; `mont` belongs to this modulus and is freed right after.
        let ok = unsafe {
            let ok = sys::BN_mod_exp_mont_consttime(
                result.0.as_ptr(),
                base.0.as_ptr(),
                exponent.0.as_ptr(),
                self.0.as_ptr(),
                ctx.0.as_ptr(),
                mont,
            );
            sys::BN_MONT_CTX_free(mont);
            ok
        };
        if ok == 1 {
            Ok(result)
        } else {
            Err(RsaError(
                "aws-lc's modular exponentiation failed".to_owned(),
            ))
        }
    }

    fn to_be_bytes(&self, length: usize) -> Result<Vec<u8>, RsaError> {
        let mut bytes = vec![0u8; length];
        // SAFETY: the pointer and length describe `bytes`.
        let ok = unsafe { sys::BN_bn2bin_padded(bytes.as_mut_ptr(), length, self.0.as_ptr()) };
        if ok == 1 {
            Ok(bytes)
        } else {
            Err(RsaError("a key value does not fit its field".to_owned()))
        }
    }
}

impl Drop for Bn {
    fn drop(&mut self) {
        // SAFETY: the BIGNUM is owned by this value and freed once.
        unsafe { sys::BN_clear_free(self.0.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_u128(value: u128, limbs: usize) -> Vec<u64> {
        let mut out = vec![0u64; limbs];
        out[0] = value as u64;
        if limbs > 1 {
            out[1] = (value >> 64) as u64;
        }
        out
    }

    #[test]
    fn the_sieve_finds_exactly_the_multiples_of_small_primes_and_of_e_plus_one() {
        let sieve = Sieve::new(16);
        assert_eq!(sieve.moduli.len(), SIEVE_PRIMES + 1);
        let check = |value: u128| sieve.passes(&from_u128(value, 16));
        // A large prime passes; its multiples by sieve primes do not; neither does k·e + 1.
        let prime: u128 = 340_282_366_920_938_463_463_374_607_431_768_211_297; // 2^128 − 159
        assert!(check(prime));
        let largest = sieve.moduli[SIEVE_PRIMES - 1];
        for small in [3, 5, 7, largest] {
            assert!(!check(u128::from(small) * 1_000_000_007), "{small}");
        }
        let first_left_out = small_odd_primes(SIEVE_PRIMES + 1)[SIEVE_PRIMES];
        assert!(check(u128::from(first_left_out) * 1_000_000_007));
        assert!(!check(65_537 * 1_000_003 * 2 + 1), "1 mod e");
        assert!(!check(65_537 * 1_000_000_007), "a multiple of e");
        // Against plain arithmetic on many odd numbers spread over all limbs.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let mut candidate = vec![0u64; 16];
            for limb in candidate.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *limb = state;
            }
            candidate[0] |= 1;
            let expected = sieve.moduli.iter().enumerate().all(|(j, &modulus)| {
                let residue = candidate.iter().rev().fold(0u128, |acc, &limb| {
                    ((acc << 64) | u128::from(limb)) % u128::from(modulus)
                });
                residue != 0 && !(j == sieve.moduli.len() - 1 && residue == 1)
            });
            assert_eq!(sieve.passes(&candidate), expected);
        }
    }

    #[test]
    fn barrett_reduction_is_exact_at_the_extremes() {
        for modulus in [3u64, 8161, 65_537, 4_294_967_291] {
            let reciprocal = u64::MAX / modulus;
            for value in [
                0,
                1,
                modulus - 1,
                modulus,
                modulus + 1,
                u64::MAX / 2,
                (1 << 55) - 1,
            ] {
                assert_eq!(
                    reduce(value, modulus, reciprocal),
                    value % modulus,
                    "{value} mod {modulus}"
                );
            }
        }
    }

    #[test]
    fn the_inverse_of_e_is_an_inverse() {
        // Against u128 arithmetic for moduli of two limbs, including one whose residue mod e is 1 and e − 1.
        for m in [
            1_000_000_007u128 * 998_244_353,
            65_537 * 12_345 + 1,
            65_537 * 54_321 + 65_536,
            u128::MAX - 4,
        ] {
            if m % 65_537 == 0 {
                continue;
            }
            let d = inverse_of_e(&from_u128(m, 2));
            let d = u128::from(d[0]) | (u128::from(d[1]) << 64);
            assert!(d < m);
            // (d · e) mod m without overflow: e = 2^16 + 1, so double d sixteen times and add d.
            let add = |a: u128, b: u128| if a >= m - b { a - (m - b) } else { a + b };
            let doubled = (0..16).fold(d, |x, _| add(x, x));
            let product = add(doubled, d);
            assert_eq!(product, 1, "e⁻¹ mod {m}");
        }
    }

    #[test]
    fn a_generated_key_is_accepted_by_aws_lc_and_a_broken_one_fails_the_self_check() {
        let pkcs8 = generate_pkcs8(2048).expect("generate");
        let pair =
            rcgen::KeyPair::try_from(pkcs8.0.as_slice()).expect("aws-lc parses and checks the key");
        assert_eq!(pair.algorithm(), &rcgen::PKCS_RSA_SHA256);
        let sieve = Sieve::for_limbs(16);
        let ctx = BnCtx::new().expect("ctx");
        let p = random_prime(sieve, &ctx, None).expect("p");
        let q = random_prime(sieve, &ctx, Some(&p)).expect("q");
        let (p, q) = if compare(&p.0, &q.0) == std::cmp::Ordering::Less {
            (q, p)
        } else {
            (p, q)
        };
        let parts = KeyParts::from_primes(&p, &q, &ctx).expect("parts");
        assert_eq!(
            (parts.n.0.len(), parts.n.0[31] >> 63),
            (32, 1),
            "n has exactly 2048 bits"
        );
        self_check(&parts, &parts.pkcs8()).expect("the key signs and verifies");
        // The self-check is not a formality: a key with one wrong CRT exponent fails it.
        let mut broken = parts;
        broken.dp.0[0] ^= 2;
        let error = self_check(&broken, &broken.pkcs8()).expect_err("a broken key");
        assert!(error.0.contains("self-check"), "{}", error.0);
    }

    #[test]
    fn every_size_is_made_and_others_are_refused() {
        for bits in [2048, 3072, 4096] {
            let pkcs8 = generate_pkcs8(bits).expect("generate");
            rcgen::KeyPair::try_from(pkcs8.0.as_slice()).expect("aws-lc parses the key");
            let key =
                ring::signature::RsaKeyPair::from_pkcs8(&pkcs8.0).expect("ring parses the key");
            // The modulus has exactly the requested size: its INTEGER is a zero byte (the sign) then `bits` bits
            // whose top one is set.
            let (public, _) = der::read(key.public().as_ref()).expect("RSAPublicKey");
            let fields = der::children(public.value).expect("fields");
            let modulus = fields[0].value;
            assert_eq!(
                (modulus.len(), modulus[0], modulus[1] >> 7),
                (bits / 8 + 1, 0, 1),
                "{bits}"
            );
        }
        assert!(generate_pkcs8(1024).is_err());
    }

    #[test]
    fn primes_must_differ_in_their_top_hundred_bits() {
        let a = vec![5u64, 0, 0, 0xc000_0000_0000_0000];
        let mut b = a.clone();
        b[0] = 7;
        assert!(!far_apart(&a, &b));
        b[2] = 1 << 60; // bit 188 of 256 is inside the top 100
        assert!(far_apart(&a, &b));
        assert!(far_apart(&b, &a));
    }

    #[test]
    fn integers_are_minimal_and_non_negative() {
        assert_eq!(integer(&[0, 0, 1]), vec![2, 1, 1]);
        assert_eq!(integer(&[0x80]), vec![2, 2, 0, 0x80]);
        assert_eq!(integer(&[0, 0]), vec![2, 1, 0]);
    }
}
