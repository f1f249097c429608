//! The `scraped` benchmark shape's generator: rows like a scraped product listing (issue 14),
//! which the simulator's 48-word strings are not.
//!
//! What makes it realistic, and why each matters to the pipeline:
//! - descriptions of 5–30 words drawn from a 20,000-word vocabulary with a Zipf-like
//!   frequency, commas (so many are quoted in CSV), some `"quoted"` words and non-ASCII text:
//!   long free text is most of the bytes the decoder scans and zstd compresses;
//! - product and image URLs that are all distinct (ids, query strings): no dictionary helps;
//! - prices with a currency symbol and thousands separator (`"$1,299.00"`, quoted in CSV);
//! - ISO 8601 timestamps, a few low-cardinality columns (brand, category, in stock).
//!
//! Invariant: the bytes depend only on the seed, the row count and the format, and row `r`
//! is the same whatever the row count (one sequential generator), so every run and every
//! tool reads the same file. About 300 bytes a row as CSV, 450 as a JSON array.

use std::io::{self, Write};

/// The columns, in export order: name, simulator type, required.
pub const COLUMNS: [(&str, &str, bool); 11] = [
    ("product_name", "string", true),
    ("brand", "string", false),
    ("price", "string", true),
    ("in_stock", "boolean", false),
    ("rating", "number", false),
    ("review_count", "integer", false),
    ("category", "string", false),
    ("product_url", "string", true),
    ("image_url", "string", false),
    ("scraped_at", "date-time", true),
    ("description", "string", false),
];

const VOCABULARY: usize = 20_000;
const BRANDS: usize = 400;
const SYLLABLES: [&str; 48] = [
    "ka", "lo", "mi", "ter", "son", "val", "ex", "pro", "dur", "lite", "max", "ion", "ar", "el",
    "or", "an", "ix", "ra", "ne", "ti", "co", "ve", "sta", "bri", "flo", "gra", "pen", "mon",
    "tra", "qui", "zen", "lu", "da", "be", "ro", "se", "ma", "no", "de", "si", "ul", "ot", "ca",
    "fi", "ge", "hu", "ja", "wy",
];
/// Words that carry a character outside ASCII; about 1 description in 8 holds one.
const NON_ASCII: [&str; 8] = [
    "café",
    "naïve",
    "Größe",
    "–",
    "résistant",
    "crème",
    "½",
    "niño",
];
const CATEGORIES: [&str; 24] = [
    "Home & Kitchen/Cookware",
    "Home & Kitchen/Storage",
    "Home & Kitchen/Small Appliances",
    "Electronics/Headphones",
    "Electronics/Chargers & Cables",
    "Electronics/Smart Home",
    "Electronics/Cameras",
    "Computers/Laptops",
    "Computers/Monitors",
    "Computers/Keyboards",
    "Garden/Tools",
    "Garden/Furniture",
    "Sports/Fitness",
    "Sports/Cycling",
    "Sports/Outdoor",
    "Toys/Building Sets",
    "Toys/Board Games",
    "Beauty/Skin Care",
    "Beauty/Hair Care",
    "Fashion/Shoes",
    "Fashion/Bags",
    "Office/Paper",
    "Pet Supplies/Dogs",
    "Automotive/Accessories",
];
const SHOPS: [&str; 6] = [
    "shopmart",
    "buyrite",
    "megastore",
    "dealhub",
    "cartly",
    "primegoods",
];
const CURRENCIES: [(&str, u64); 3] = [("$", 700), ("€", 200), ("£", 100)];
/// 2025-11-29T00:00:00Z; rows are scraped about 0.4 s apart from there.
const FIRST_SCRAPE: i64 = 1_764_374_400;

/// splitmix64: tiny, seedable and stable forever (unlike `rand`'s `StdRng`, whose algorithm
/// may change between versions and would silently change the cached inputs).
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `per_mille` / 1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Index in `0..n` with a Zipf-like (log-uniform) frequency: index 0 is most common.
    fn zipf(&mut self, n: usize) -> usize {
        let v = ((n as f64 + 1.0).ln() * self.unit()).exp() - 1.0;
        (v as usize).min(n - 1)
    }
}

/// A word of 1–4 syllables; the frequent (low) indexes get the short words, as in English.
fn make_word(rng: &mut Rng, index: usize) -> String {
    let syllables = match index {
        0..100 => 1,
        100..2000 => 2,
        2000..10_000 => 3,
        _ => 2 + rng.below(3) as usize,
    };
    (0..syllables)
        .map(|_| SYLLABLES[rng.below(SYLLABLES.len() as u64) as usize])
        .collect()
}

fn capitalized(out: &mut String, word: &str) {
    let mut chars = word.chars();
    if let Some(c) = chars.next() {
        out.extend(c.to_uppercase());
        out.push_str(chars.as_str());
    }
}

/// One row's cells as text; `None` is null. Buffers are reused row after row.
#[derive(Default)]
struct Row {
    cells: [String; 11],
    null: [bool; 11],
}

/// Generates the rows, one at a time.
pub struct Scraped {
    rng: Rng,
    words: Vec<String>,
    brands: Vec<String>,
    row: Row,
    next: u64,
}

impl Scraped {
    pub fn new(seed: u64) -> Self {
        let mut rng = Rng(seed ^ 0x5C2A_9ED0_0000_0014);
        let words: Vec<String> = (0..VOCABULARY).map(|i| make_word(&mut rng, i)).collect();
        let brands = (0..BRANDS)
            .map(|i| {
                let mut b = String::new();
                capitalized(&mut b, &make_word(&mut rng, 2000 + i));
                if i % 5 == 0 {
                    b.push(' ');
                    capitalized(&mut b, &words[rng.below(300) as usize]);
                }
                b
            })
            .collect();
        Scraped {
            rng,
            words,
            brands,
            row: Row::default(),
            next: 0,
        }
    }

    /// Index of a word of the vocabulary, frequent words more often.
    fn word(&mut self) -> usize {
        self.rng.zipf(VOCABULARY)
    }

    /// Fills `self.row` with row `self.next`.
    fn fill(&mut self) {
        use std::fmt::Write as _;
        let r = self.next;
        self.next += 1;
        let id = 1_000_000 + r * 7 + self.rng.below(7);
        let mut row = std::mem::take(&mut self.row);
        for c in &mut row.cells {
            c.clear();
        }
        for (k, null) in row.null.iter_mut().enumerate() {
            // Optional columns are null in about 5% of rows.
            *null = !COLUMNS[k].2 && self.rng.chance(50);
        }
        let [
            name,
            brand,
            price,
            stock,
            rating,
            reviews,
            category,
            url,
            image,
            at,
            desc,
        ] = &mut row.cells;

        let mut slug = String::new();
        for k in 0..4 {
            let i = self.word();
            let w = &self.words[i];
            if k > 0 {
                name.push(' ');
                slug.push('-');
            }
            capitalized(name, w);
            slug.push_str(w);
        }
        let model = id % 100_000;
        let _ = write!(
            name,
            " {}{}-{model:05}",
            (b'A' + (id % 26) as u8) as char,
            (b'A' + (id / 26 % 26) as u8) as char
        );

        let b = self.rng.zipf(BRANDS);
        brand.push_str(&self.brands[b]);

        let mut pick = self.rng.below(1000);
        let symbol = CURRENCIES
            .iter()
            .find(|(_, w)| {
                let hit = pick < *w;
                pick = pick.saturating_sub(*w);
                hit
            })
            .map_or("$", |(s, _)| s);
        let cents = (((1.0 + 4999.0 * self.rng.unit().powi(3)) * 100.0) as u64).max(99);
        let units = cents / 100;
        price.push_str(symbol);
        if units >= 1000 {
            let _ = write!(price, "{},{:03}", units / 1000, units % 1000);
        } else {
            let _ = write!(price, "{units}");
        }
        let _ = write!(price, ".{:02}", cents % 100);

        stock.push_str(if self.rng.chance(850) {
            "true"
        } else {
            "false"
        });
        let _ = write!(rating, "{:.1}", 1.0 + 4.0 * self.rng.unit().sqrt());
        let _ = write!(
            reviews,
            "{}",
            (20_000f64.powf(self.rng.unit()) - 1.0) as u64
        );

        let cat = self.rng.zipf(CATEGORIES.len());
        category.push_str(CATEGORIES[cat]);

        let shop = SHOPS[(id % SHOPS.len() as u64) as usize];
        let (k1, k2) = (self.word(), self.word());
        let (kw1, kw2) = (&self.words[k1], &self.words[k2]);
        let _ = write!(
            url,
            "https://www.{shop}.com/p/{slug}/{id}?ref=sr_{}&kw={kw1}+{kw2}",
            self.rng.below(48) + 1
        );
        let _ = write!(
            image,
            "https://img.{shop}.com/i/{:03}/{id}_{}.jpg?w=800",
            id % 1000,
            self.rng.below(6)
        );

        let t = FIRST_SCRAPE + (r as f64 * 0.4) as i64 + self.rng.below(30) as i64;
        let when = chrono::DateTime::from_timestamp(t, 0).unwrap_or_default();
        let _ = write!(at, "{}", when.format("%Y-%m-%dT%H:%M:%SZ"));

        let words = 5 + self.rng.below(26);
        let quoted = self.rng.chance(60).then(|| self.rng.below(words));
        let foreign = self.rng.chance(120).then(|| self.rng.below(words));
        for k in 0..words {
            let i = self.word();
            let w: &str = if foreign == Some(k) {
                NON_ASCII[self.rng.below(NON_ASCII.len() as u64) as usize]
            } else {
                &self.words[i]
            };
            if k > 0 {
                desc.push(if self.rng.chance(80) { ',' } else { ' ' });
                if desc.ends_with(',') {
                    desc.push(' ');
                }
            }
            if quoted == Some(k) {
                desc.push('"');
            }
            if k == 0 {
                capitalized(desc, w);
            } else {
                desc.push_str(w);
            }
            if quoted == Some(k) {
                desc.push('"');
            }
        }
        desc.push('.');
        self.row = row;
    }

    /// Writes `rows` rows as a whole export body: CSV with a header (LF line ends, RFC 4180
    /// quoting) or a JSON array laid out as the simulator does (`[`, rows joined by `,\n`,
    /// `]\n`).
    pub fn write(mut self, out: &mut impl Write, rows: u64, csv: bool) -> io::Result<()> {
        let mut line = Vec::with_capacity(1024);
        if csv {
            let names: Vec<&str> = COLUMNS.iter().map(|c| c.0).collect();
            writeln!(out, "{}", names.join(","))?;
        } else {
            out.write_all(b"[")?;
        }
        for r in 0..rows {
            self.fill();
            line.clear();
            if csv {
                self.csv_line(&mut line);
            } else {
                if r > 0 {
                    line.extend_from_slice(b",\n");
                }
                self.json_object(&mut line);
            }
            out.write_all(&line)?;
        }
        if !csv {
            out.write_all(b"]\n")?;
        }
        Ok(())
    }

    fn csv_line(&self, line: &mut Vec<u8>) {
        for (k, cell) in self.row.cells.iter().enumerate() {
            if k > 0 {
                line.push(b',');
            }
            if self.row.null[k] {
                continue;
            }
            let bytes = cell.as_bytes();
            if bytes
                .iter()
                .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
            {
                line.push(b'"');
                for &b in bytes {
                    if b == b'"' {
                        line.push(b'"');
                    }
                    line.push(b);
                }
                line.push(b'"');
            } else {
                line.extend_from_slice(bytes);
            }
        }
        line.push(b'\n');
    }

    fn json_object(&self, line: &mut Vec<u8>) {
        line.push(b'{');
        for (k, cell) in self.row.cells.iter().enumerate() {
            let (name, ty, _) = COLUMNS[k];
            if k > 0 {
                line.push(b',');
            }
            line.push(b'"');
            line.extend_from_slice(name.as_bytes());
            line.extend_from_slice(b"\":");
            if self.row.null[k] {
                line.extend_from_slice(b"null");
            } else if matches!(ty, "boolean" | "number" | "integer") {
                line.extend_from_slice(cell.as_bytes());
            } else {
                line.push(b'"');
                for &b in cell.as_bytes() {
                    // The generator's text holds no `\` or control characters; `"` may occur.
                    if b == b'"' {
                        line.push(b'\\');
                    }
                    line.push(b);
                }
                line.push(b'"');
            }
        }
        line.push(b'}');
    }
}

/// A whole export body in memory (for the criterion benches).
#[allow(dead_code)]
pub fn body(seed: u64, rows: u64, csv: bool) -> Vec<u8> {
    let mut out = Vec::new();
    Scraped::new(seed)
        .write(&mut out, rows, csv)
        .expect("writing to a Vec cannot fail");
    out
}
