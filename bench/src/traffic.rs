//! Votes for the demo and benchmarks, in the JSON shapes real clients send: the course's
//! two string-valued traffic formats (`name`/`rank` and `artist`/`ranked`) and plain
//! numbers. The band mix is skewed, so the leaderboard has a shape.

use serde_json::{Value, json};

/// (band, album, year, weight): a band with weight 8 gets 8 times the votes of weight 1.
const CATALOGUE: [(&str, &str, u16, u64); 12] = [
    ("Radiohead", "OK Computer", 1997, 13),
    ("The Beatles", "Abbey Road", 1969, 11),
    ("Pink Floyd", "The Dark Side of the Moon", 1973, 10),
    ("Nirvana", "Nevermind", 1991, 9),
    ("Fleetwood Mac", "Rumours", 1977, 8),
    ("The Doors", "Strange Days", 1967, 7),
    ("Daft Punk", "Discovery", 2001, 6),
    ("Björk", "Homogenic", 1997, 5),
    ("Kendrick Lamar", "To Pimp a Butterfly", 2015, 4),
    ("Portishead", "Dummy", 1994, 3),
    ("Arcade Fire", "Funeral", 2004, 2),
    ("Sigur Rós", "Ágætis byrjun", 1999, 1),
];

/// The band of the `i`-th vote, whichever spelling the vote uses.
pub fn band(i: u64) -> String {
    let vote = vote(i);
    ["band", "name", "artist"].iter().find_map(|key| vote[key].as_str()).unwrap_or_default().to_owned()
}

/// The `i`-th vote of a run: deterministic, so two runs send the same traffic.
pub fn vote(i: u64) -> Value {
    let total_weight: u64 = CATALOGUE.iter().map(|entry| entry.3).sum();
    // A multiplicative hash spreads consecutive votes over the bands.
    let mut pick = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    pick %= total_weight;
    let (band, album, year, _) = CATALOGUE
        .iter()
        .find(|entry| {
            if pick < entry.3 {
                return true;
            }
            pick -= entry.3;
            false
        })
        .copied()
        .unwrap_or(CATALOGUE[0]);
    let rank = 5.0 + (i % 11) as f64 * 0.5;
    match i % 3 {
        0 => {
            json!({"name": band, "album": album, "year": year.to_string(), "rank": format!("{rank:.1}")})
        }
        1 => {
            json!({"artist": band, "album": album, "year": year.to_string(), "ranked": format!("{rank:.1}")})
        }
        _ => json!({"band": band, "album": album, "year": year, "rank": rank}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_band_gets_votes_in_roughly_its_weight() {
        let mut counts = std::collections::HashMap::new();
        for i in 0..26_000 {
            let vote = vote(i);
            let band = ["name", "artist", "band"].iter().find_map(|k| vote[*k].as_str()).unwrap().to_owned();
            *counts.entry(band).or_insert(0u64) += 1;
        }
        assert_eq!(counts.len(), CATALOGUE.len());
        let total_weight: u64 = CATALOGUE.iter().map(|entry| entry.3).sum();
        for (band, _, _, weight) in CATALOGUE {
            let share = counts[band] as f64 / 26_000.0 / (weight as f64 / total_weight as f64);
            assert!((0.9..1.1).contains(&share), "{band}: {share}");
        }
        // Weights differ by one step at most 18 %: the order of the counts is the weights'.
        let by_count: Vec<u64> = {
            let mut bands: Vec<_> = CATALOGUE.iter().map(|entry| (counts[entry.0], entry.3)).collect();
            bands.sort_by_key(|band| std::cmp::Reverse(band.0));
            bands.into_iter().map(|(_, weight)| weight).collect()
        };
        let mut by_weight: Vec<u64> = CATALOGUE.iter().map(|entry| entry.3).collect();
        by_weight.sort_by_key(|weight| std::cmp::Reverse(*weight));
        assert_eq!(by_count, by_weight, "{counts:?}");
    }
}
