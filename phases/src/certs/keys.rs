//! The keys of one run: generated in the background on every core and handed to the `certs/*` and `kubeconfig/*`
//! steps as they finish.
//!
//! Why: key generation is nearly all of the cost of a PKI (an RSA-2048 key costs 55–75 ms of CPU with bosun's
//! generator, bosun_pki's rsa module; signing, encoding and writing its certificate about 2 ms) and keys are
//! independent. So the `certs` parent asks, before its first child runs, for every key the PKI still lacks on the
//! node (its certificates, the service-account key and the kubeconfigs the next phase makes); generation starts at
//! once on every core, and each child takes the next finished key and signs and writes while the other cores go on
//! making keys. A child that runs alone (`init phase certs apiserver`) finds nothing reserved and makes its own key.
//!
//! The supply belongs to one run's [`InitData`](crate::init::InitData) (workflow data is read-only during a run, so
//! this is interior mutability, like the token `init` generates). Guarantees: every key is fresh, handed out at most
//! once, and never written anywhere by the supply. Caveat: a run that stops before taking every reserved key (a
//! failed phase, `--skip-phases kubeconfig`, `init phase certs` alone) leaves the keys in flight to finish and be
//! dropped; dropping the supply stops any not yet started.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use bosun_pki::{KeyAlgorithm, PkiError, PrivateKey};

/// Keys being made for a run; see the module documentation.
pub struct KeySupply {
    shared: Arc<Shared>,
}

impl Default for KeySupply {
    /// A supply with nothing reserved. It starts the key generator's entropy source at once, on a thread of its own:
    /// aws-lc seeds its random generator from CPU jitter once per process, about 55 ms of CPU that would otherwise
    /// hold up the first key; started when the run's data is built, it overlaps with gathering the host facts.
    fn default() -> Self {
        let _ = std::thread::Builder::new()
            .name("bosun-keygen-seed".to_owned())
            .spawn(|| {
                // A throwaway P-256 key is the cheapest call that seeds the generator; it is never kept.
                let _ = PrivateKey::generate(KeyAlgorithm::EcdsaP256);
            });
        KeySupply {
            shared: Arc::default(),
        }
    }
}

impl std::fmt::Debug for KeySupply {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        formatter
            .debug_struct("KeySupply")
            .field("algorithm", &state.algorithm)
            .field("queued", &state.queued)
            .field("running", &state.running)
            .field("ready", &state.ready.len())
            .finish()
    }
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when a key is ready or a generation failed.
    changed: Condvar,
}

#[derive(Default)]
struct State {
    algorithm: Option<KeyAlgorithm>,
    /// Keys asked for and not started yet.
    queued: usize,
    /// Keys being generated now (one per busy worker).
    running: usize,
    /// Worker threads alive.
    workers: usize,
    ready: Vec<PrivateKey>,
    /// Why a background generation failed; handed to the next taker.
    failure: Option<PkiError>,
}

impl State {
    fn outstanding(&self) -> usize {
        self.queued + self.running + self.ready.len()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How many threads generate keys: one per core.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

impl KeySupply {
    /// Makes sure `count` keys of `algorithm` are ready or being made, starting the missing ones now on every core.
    /// Returns how many were added.
    pub(crate) fn reserve(&self, algorithm: KeyAlgorithm, count: usize) -> usize {
        let spawn = {
            let mut state = self.shared.lock();
            if state.algorithm != Some(algorithm) {
                // A different algorithm than an earlier reservation (not within one configuration): start afresh.
                state.algorithm = Some(algorithm);
                state.queued = 0;
                state.ready.clear();
            }
            let added = count.saturating_sub(state.outstanding());
            state.queued += added;
            let wanted_workers = cores().min(state.queued + state.running);
            let spawn = wanted_workers.saturating_sub(state.workers);
            state.workers += spawn;
            (added, spawn)
        };
        let (added, spawn) = spawn;
        for _ in 0..spawn {
            let shared = Arc::clone(&self.shared);
            let started = std::thread::Builder::new()
                .name("bosun-keygen".to_owned())
                .spawn(move || work(&shared, algorithm));
            if started.is_err() {
                // No thread: the keys it would have made are generated by their takers instead.
                let mut state = self.shared.lock();
                state.workers -= 1;
                if state.workers == 0 {
                    state.queued = 0;
                }
            }
        }
        added
    }

    /// The next key of `algorithm`: a reserved one (waiting for it to finish if need be), or a freshly generated one
    /// when nothing is reserved.
    pub(crate) fn take(&self, algorithm: KeyAlgorithm) -> Result<PrivateKey, PkiError> {
        {
            let mut state = self.shared.lock();
            while state.algorithm == Some(algorithm) {
                if let Some(key) = state.ready.pop() {
                    return Ok(key);
                }
                if let Some(error) = state.failure.take() {
                    return Err(error);
                }
                if state.queued + state.running == 0 {
                    break;
                }
                state = self
                    .shared
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
        PrivateKey::generate(algorithm)
    }
}

impl Drop for KeySupply {
    fn drop(&mut self) {
        // Workers finish the key in hand and stop; nobody will take what they make.
        self.shared.lock().queued = 0;
    }
}

/// A worker: makes queued keys until none is left.
fn work(shared: &Shared, algorithm: KeyAlgorithm) {
    loop {
        {
            let mut state = shared.lock();
            if state.queued == 0 || state.algorithm != Some(algorithm) {
                state.workers -= 1;
                return;
            }
            state.queued -= 1;
            state.running += 1;
        }
        let key = PrivateKey::generate(algorithm);
        let mut state = shared.lock();
        state.running -= 1;
        if state.algorithm == Some(algorithm) {
            match key {
                Ok(key) => state.ready.push(key),
                Err(error) => state.failure = Some(error),
            }
        }
        shared.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public_keys(keys: &[PrivateKey]) -> Vec<Vec<u8>> {
        let mut publics: Vec<Vec<u8>> = keys.iter().map(PrivateKey::public_key_der).collect();
        publics.sort();
        publics.dedup();
        publics
    }

    #[test]
    fn reserved_keys_are_handed_out_once_each_and_distinct() {
        let supply = KeySupply::default();
        assert_eq!(supply.reserve(KeyAlgorithm::EcdsaP256, 6), 6);
        // Asking again for what is already coming adds nothing.
        assert_eq!(supply.reserve(KeyAlgorithm::EcdsaP256, 4), 0);
        let keys: Vec<PrivateKey> = (0..6)
            .map(|_| supply.take(KeyAlgorithm::EcdsaP256).expect("key"))
            .collect();
        assert_eq!(public_keys(&keys).len(), 6);
        let state = supply.shared.lock();
        assert_eq!(state.outstanding(), 0, "all six were taken");
    }

    #[test]
    fn a_take_without_a_reservation_generates_its_own_key() {
        let supply = KeySupply::default();
        let key = supply.take(KeyAlgorithm::EcdsaP256).expect("key");
        assert!(!key.is_rsa());
        assert_eq!(supply.shared.lock().workers, 0, "no worker was started");
    }

    #[test]
    fn taking_more_than_reserved_falls_back_to_generating() {
        let supply = KeySupply::default();
        supply.reserve(KeyAlgorithm::EcdsaP256, 1);
        let keys: Vec<PrivateKey> = (0..3)
            .map(|_| supply.take(KeyAlgorithm::EcdsaP256).expect("key"))
            .collect();
        assert_eq!(public_keys(&keys).len(), 3);
    }

    #[test]
    fn another_algorithm_is_never_served_from_the_reservation() {
        let supply = KeySupply::default();
        supply.reserve(KeyAlgorithm::EcdsaP256, 2);
        let key = supply.take(KeyAlgorithm::EcdsaP384).expect("key");
        assert_eq!(
            key.public_key_der().len(),
            PrivateKey::generate(KeyAlgorithm::EcdsaP384)
                .expect("key")
                .public_key_der()
                .len()
        );
    }
}
