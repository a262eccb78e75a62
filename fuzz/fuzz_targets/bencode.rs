#![no_main]
use control::bencode::Value;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = Value::decode(data) {
        // what decodes re-encodes to something that decodes to the same value
        assert_eq!(Value::decode(&v.encode()).unwrap(), v);
    }
});
