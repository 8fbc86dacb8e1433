//! PATCH paths: parsing never panics; what parses prints and parses back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use muster_scim::PatchPath;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(path) = PatchPath::parse(text) else { return };
    let printed = path.to_string();
    match PatchPath::parse(&printed) {
        Ok(again) => assert_eq!(again, path, "{printed}"),
        Err(e) => panic!("printed path does not parse: {printed}: {e}"),
    }
});
