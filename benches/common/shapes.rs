//! The column layouts of the benchmark exports, shared by `examples/bench_gen.rs` and the
//! criterion benches (included with `#[path]`), so every benchmark reads the same shapes.
//! Invariant: column order here is the export's column order (the sim keeps schema order).

use serde_json::{Map, Value, json};

#[path = "scraped.rs"]
pub mod scraped;

/// Seed of every benchmark input; part of the cached file names so a change never reuses one.
pub const SEED: u64 = 20_261_129;

/// A column layout of the benchmark exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// 11 columns of a scraped product page, as in issue 7.
    Products,
    /// 50 columns: 20 strings, 10 integers, 10 numbers, 5 booleans, 5 timestamps.
    Wide,
    /// 11 columns like `Products`, but with realistic values (issue 14): long free text,
    /// distinct URLs, prices with currency symbols; written by [`scraped`], not the sim.
    Scraped,
}

/// One column: name, sim type (`string`, `integer`, `number`, `boolean`, `date-time`), and
/// whether it is `required` (never null; the sim makes other columns null in ~5% of rows).
pub type Col = (String, &'static str, bool);

impl std::str::FromStr for Shape {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "products" => Ok(Shape::Products),
            "wide" => Ok(Shape::Wide),
            "scraped" => Ok(Shape::Scraped),
            other => Err(format!(
                "unknown shape `{other}` (expected `products`, `wide` or `scraped`)"
            )),
        }
    }
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::Products => "products",
            Shape::Wide => "wide",
            Shape::Scraped => "scraped",
        }
    }

    pub fn columns(self) -> Vec<Col> {
        match self {
            Shape::Products => [
                ("product_name", "string", true),
                ("brand", "string", false),
                ("price", "number", true),
                ("in_stock", "boolean", false),
                ("rating", "number", false),
                ("review_count", "integer", false),
                ("category", "string", false),
                ("product_url", "string", true),
                ("image_url", "string", false),
                ("scraped_at", "date-time", true),
                ("description", "string", false),
            ]
            .into_iter()
            .map(|(n, t, r)| (n.to_owned(), t, r))
            .collect(),
            Shape::Scraped => scraped::COLUMNS
                .iter()
                .map(|&(n, t, r)| (n.to_owned(), t, r))
                .collect(),
            Shape::Wide => {
                let groups: [(&str, &'static str, usize); 5] = [
                    ("s", "string", 20),
                    ("i", "integer", 10),
                    ("n", "number", 10),
                    ("b", "boolean", 5),
                    ("t", "date-time", 5),
                ];
                groups
                    .iter()
                    .flat_map(|&(prefix, ty, n)| {
                        (0..n).map(move |k| (format!("{prefix}{k:02}"), ty, k % 4 == 0))
                    })
                    .collect()
            }
        }
    }

    /// The task's `output_schema` as the simulator reads it (property order = column order).
    pub fn output_schema(self) -> Value {
        let cols = self.columns();
        let mut props = Map::new();
        for (name, ty, _) in &cols {
            let prop = match *ty {
                "date-time" => json!({"type": "string", "format": "date-time"}),
                other => json!({ "type": other }),
            };
            props.insert(name.clone(), prop);
        }
        let required: Vec<&str> = cols.iter().filter(|c| c.2).map(|c| c.0.as_str()).collect();
        json!({"type": "object", "required": required, "properties": props})
    }

    /// The connector's schema file (schemas/README.md): same names, typed columns.
    pub fn connector_schema(self) -> Value {
        let columns: Vec<Value> = self
            .columns()
            .iter()
            .map(|(name, ty, required)| {
                if self == Shape::Scraped && name == "price" {
                    // `$1,299.00`, `€12.99`: read exactly, as a user of such data would.
                    return json!({"name": name, "source": name, "type": "decimal(12,2)",
                        "nullable": !required, "currency": true, "thousands_separator": ","});
                }
                let ty = if *ty == "date-time" { "timestamp" } else { ty };
                json!({"name": name, "source": name, "type": ty, "nullable": !required})
            })
            .collect();
        json!({"name": format!("bench_{}", self.name()), "version": 1, "columns": columns})
    }

    /// The simulator task serving this shape.
    pub fn task(self) -> titan_sim::SimTask {
        titan_sim::SimTask {
            id: format!("bench-{}", self.name()),
            name: format!("bench {}", self.name()),
            output_schema: self.output_schema(),
            ..Default::default()
        }
    }

    /// Whether the export is written by [`scraped`] instead of the simulator's generator.
    pub fn own_generator(self) -> bool {
        self == Shape::Scraped
    }

    /// Execution id of the `rows`-row export (the generated values depend on it).
    pub fn execution_id(self, rows: u64) -> String {
        format!("bench-{}-{rows}", self.name())
    }
}
