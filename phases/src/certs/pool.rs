//! Keys generated ahead of time, in parallel, by the `certs` and `kubeconfig` parent phases and taken by their
//! children.
//!
//! Why a process-wide pool: key generation is nearly all of the cost of a PKI and keys are independent, so the
//! parents make every key their children will need on all cores at once; each child still works alone
//! (`init phase certs apiserver`) and then simply generates its own key. The workflow data is read-only during a run,
//! so the pool lives here. Pooled keys are fresh random keys that were never written anywhere; whichever child
//! takes one, the result is the same as if it had generated it. The pool is bounded and dropped at process exit.

use std::sync::Mutex;

use bosun_pki::{generate_keys, KeyAlgorithm, PkiError, PrivateKey};

/// More keys than one full PKI ever needs (10 certificates, sa, 5 kubeconfigs).
const CAPACITY: usize = 32;

static POOL: Mutex<Vec<(KeyAlgorithm, PrivateKey)>> = Mutex::new(Vec::new());

fn pool() -> std::sync::MutexGuard<'static, Vec<(KeyAlgorithm, PrivateKey)>> {
    POOL.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How many keys of `algorithm` are waiting.
pub(crate) fn available(algorithm: KeyAlgorithm) -> usize {
    pool().iter().filter(|(kind, _)| *kind == algorithm).count()
}

/// Makes sure at least `wanted` keys of `algorithm` are waiting, generating the difference in parallel.
pub(crate) fn fill(algorithm: KeyAlgorithm, wanted: usize) -> Result<usize, PkiError> {
    let wanted = wanted.min(CAPACITY);
    let missing = wanted.saturating_sub(available(algorithm));
    if missing == 0 {
        return Ok(0);
    }
    let keys = generate_keys(algorithm, missing)?;
    pool().extend(keys.into_iter().map(|key| (algorithm, key)));
    Ok(missing)
}

/// A waiting key of `algorithm`, or a freshly generated one.
pub(crate) fn take(algorithm: KeyAlgorithm) -> Result<PrivateKey, PkiError> {
    let taken = {
        let mut keys = pool();
        keys.iter()
            .position(|(kind, _)| *kind == algorithm)
            .map(|index| keys.swap_remove(index).1)
    };
    match taken {
        Some(key) => Ok(key),
        None => PrivateKey::generate(algorithm),
    }
}
