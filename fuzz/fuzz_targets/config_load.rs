//! Feeds arbitrary text to the configuration loader. Properties: it never panics; every error has a message and
//! names the file; whatever loads, printed as v1beta4, loads again to the same configuration; migrate never panics.
#![no_main]

use bosun_config::{load, print, HostFacts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let facts = HostFacts {
        hostname: "fuzz-node".to_owned(),
        default_address: "10.0.0.1".parse().ok(),
    };
    match load("fuzz.yaml", text, &facts) {
        Ok(config) => {
            let printed = print::full(&config).expect("a loaded configuration prints");
            let reloaded = load("printed.yaml", &printed, &facts).expect("printed configuration loads again");
            assert_eq!(reloaded.cluster, config.cluster);
            assert_eq!(reloaded.init, config.init);
            let _ = print::migrate("fuzz.yaml", text, &facts);
        }
        Err(error) => {
            assert!(!error.problems.is_empty());
            for problem in &error.problems {
                assert!(!problem.message.is_empty());
                assert_eq!(problem.file, "fuzz.yaml");
            }
        }
    }
});
