#![no_main]
//! The schema file parser: any text gives a schema or a `SchemaError`; a schema that parses
//! writes back (`to_json`) to text that parses to the same schema, and maps to Arrow.

use titan_connector::map::{Lineage, Mapper};
use titan_connector::schema::TargetSchema;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(schema) = TargetSchema::from_json_str(text, "<fuzz>") else {
        return;
    };
    let again = TargetSchema::from_json_str(&schema.to_json(), "<fuzz: written back>")
        .unwrap_or_else(|e| {
            panic!(
                "written-back schema does not parse: {e}\n{}",
                schema.to_json()
            )
        });
    assert_eq!(
        again.fingerprint(),
        schema.fingerprint(),
        "{}",
        schema.to_json()
    );
    let mapper = Mapper::new(
        &schema,
        Lineage {
            task_id: "t".into(),
            execution_id: "e".into(),
        },
    );
    let _ = mapper.arrow_schema();
});
