//! A race's standings narrowed for a reader: by gender, by category, by a
//! search of names and bibs, and to a page (`GET
//! /api/races/{id}/standings?gender=F&category=F40-44&q=smith&from=1&to=50`),
//! and the groups a race's rows fall in (`GET /api/races/{id}/groups`).
//! Each row then carries its `place` within the gender and category asked
//! for: the live order of a marathon's women, or of one age group, that the
//! page's filters show. A query walks the race's order once, O(rows), and
//! copies only the rows it returns.

use std::collections::{BTreeMap, HashMap};

use schemas::StandingRow;
use serde::Serialize;

use crate::protocol::viewport::MAX_WINDOW_ROWS;

/// The longest search text, bytes.
pub const MAX_SEARCH_BYTES: usize = 64;

/// What a standings request narrows the race to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StandingsQuery {
    /// Only participants listed with this gender.
    pub gender: Option<String>,
    /// Only participants listed in this category.
    pub category: Option<String>,
    /// Only participants whose name or id holds this (any case).
    pub search: Option<String>,
    /// The first of the kept rows to return, from 1.
    pub from: Option<u32>,
    /// The last.
    pub to: Option<u32>,
}

impl StandingsQuery {
    /// Reads the query parameters, or says what is wrong with them.
    pub fn parse(params: &HashMap<String, String>) -> Result<Self, String> {
        let mut q = StandingsQuery::default();
        for (key, value) in params {
            let number = || {
                value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| format!("`{key}` is a rank, from 1: {value:?}"))
            };
            match key.as_str() {
                "gender" => q.gender = Some(value.clone()),
                "category" => q.category = Some(value.clone()),
                "q" if value.len() > MAX_SEARCH_BYTES => {
                    return Err(format!("`q` is at most {MAX_SEARCH_BYTES} bytes"));
                }
                "q" => q.search = Some(value.to_lowercase()).filter(|s| !s.trim().is_empty()),
                "from" => q.from = Some(number()?),
                "to" => q.to = Some(number()?),
                _ => {
                    return Err(format!(
                        "unknown parameter `{key}`: expected gender, category, q, from, to"
                    ));
                }
            }
        }
        let (from, to) = (q.from.unwrap_or(1), q.to.unwrap_or(u32::MAX));
        if to < from {
            return Err(format!("`to` ({to}) is before `from` ({from})"));
        }
        if q.narrows() && to - from >= MAX_WINDOW_ROWS {
            return Err(format!(
                "a narrowed request returns at most {MAX_WINDOW_ROWS} rows: give `from` and `to`"
            ));
        }
        Ok(q)
    }

    /// Whether anything narrows the race (else every row is returned).
    pub fn narrows(&self) -> bool {
        *self != StandingsQuery::default()
    }

    /// Whether places within a group are asked for.
    fn grouped(&self) -> bool {
        self.gender.is_some() || self.category.is_some()
    }

    /// Whether `row` is in the gender and category asked for.
    fn in_group(&self, row: &StandingRow) -> bool {
        let is = |want: &Option<String>, have: &Option<String>| {
            want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
        };
        is(&self.gender, &row.gender) && is(&self.category, &row.category)
    }

    /// Whether `row`'s name or id holds the search.
    fn found(&self, row: &StandingRow) -> bool {
        self.search.as_ref().is_none_or(|s| {
            row.participant.to_lowercase().contains(s) || row.name.to_lowercase().contains(s)
        })
    }

    /// The rows it keeps of `ranked` (in rank order), between `from` and
    /// `to`, each with its place in the group where one is asked for; and
    /// how many it keeps in all.
    pub fn apply<'a>(
        &self,
        ranked: impl Iterator<Item = &'a StandingRow>,
        mut shown: impl FnMut(&StandingRow) -> StandingRow,
    ) -> (Vec<(StandingRow, Option<u32>)>, u32) {
        let (from, to) = (self.from.unwrap_or(1), self.to.unwrap_or(u32::MAX));
        let (mut place, mut kept, mut out) = (0u32, 0u32, Vec::new());
        for row in ranked {
            if !self.in_group(row) {
                continue;
            }
            place += 1;
            if !self.found(row) {
                continue;
            }
            kept += 1;
            if (from..=to).contains(&kept) {
                out.push((shown(row), self.grouped().then_some(place)));
            }
        }
        (out, kept)
    }
}

/// The genders and categories of a race's rows, each with how many rows
/// are in it: what a page offers to filter by.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Groups {
    /// Rows by gender.
    pub genders: BTreeMap<String, u32>,
    /// Rows by category.
    pub categories: BTreeMap<String, u32>,
}

impl Groups {
    /// The groups of `rows`.
    pub fn of<'a>(rows: impl Iterator<Item = &'a StandingRow>) -> Self {
        let mut g = Groups::default();
        for row in rows {
            if let Some(x) = &row.gender {
                *g.genders.entry(x.clone()).or_default() += 1;
            }
            if let Some(x) = &row.category {
                *g.categories.entry(x.clone()).or_default() += 1;
            }
        }
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::{Status, Timestamp};

    fn row(p: &str, name: &str, gender: &str, category: &str) -> StandingRow {
        StandingRow {
            race: "r".into(),
            rank: None,
            participant: p.into(),
            name: name.into(),
            gender: Some(gender.into()),
            category: Some(category.into()),
            distance_m: 0.0,
            laps: None,
            leg: None,
            gap_s: None,
            speed_mps: None,
            last_lap_s: None,
            last_seen: Timestamp(0),
            status: Status::Racing,
            eta: None,
            position: None,
        }
    }

    fn query(pairs: &[(&str, &str)]) -> Result<StandingsQuery, String> {
        let params = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        StandingsQuery::parse(&params)
    }

    #[test]
    fn a_query_keeps_a_group_in_rank_order_with_places_within_it() {
        let rows = [
            row("1", "Desisa, Lelisa", "M", "M18-39"),
            row("F11", "Rotich, Caroline", "F", "F18-39"),
            row("7", "Keitany, Wilson", "M", "M40-44"),
            row("F101", "Olaru, Nuta", "F", "F40-44"),
            row("F5", "Smith, Ann", "F", "F18-39"),
        ];
        let run = |pairs: &[(&str, &str)]| {
            let (kept, total) = query(pairs).unwrap().apply(rows.iter(), Clone::clone);
            let got: Vec<(String, Option<u32>)> =
                kept.into_iter().map(|(r, p)| (r.participant, p)).collect();
            (got, total)
        };
        let ids = |list: &[(&str, Option<u32>)]| -> Vec<(String, Option<u32>)> {
            list.iter().map(|(p, n)| ((*p).to_owned(), *n)).collect()
        };
        assert_eq!(
            run(&[("gender", "F"), ("from", "1"), ("to", "10")]),
            (
                ids(&[("F11", Some(1)), ("F101", Some(2)), ("F5", Some(3))]),
                3
            )
        );
        assert_eq!(
            run(&[("gender", "F"), ("from", "2"), ("to", "2")]),
            (ids(&[("F101", Some(2))]), 3)
        );
        // A search within a group keeps the places in the group.
        assert_eq!(
            run(&[("gender", "F"), ("q", "SMITH"), ("from", "1"), ("to", "5")]),
            (ids(&[("F5", Some(3))]), 1)
        );
        assert_eq!(
            run(&[("category", "F40-44"), ("from", "1"), ("to", "5")]),
            (ids(&[("F101", Some(1))]), 1)
        );
        // A search alone finds bibs and names, with no places.
        assert_eq!(
            run(&[("q", "f1"), ("from", "1"), ("to", "5")]),
            (ids(&[("F11", None), ("F101", None)]), 2)
        );
        assert_eq!(run(&[]).1, 5, "no query keeps every row");
        let groups = Groups::of(rows.iter());
        assert_eq!(groups.genders["F"], 3);
        assert_eq!(groups.categories["F18-39"], 2);
    }

    #[test]
    fn a_bad_query_is_refused_with_a_reason() {
        for (pairs, says) in [
            (&[("sex", "F")][..], "unknown parameter `sex`"),
            (&[("from", "0"), ("to", "3")][..], "`from` is a rank"),
            (&[("from", "x"), ("to", "3")][..], "`from` is a rank"),
            (&[("from", "5"), ("to", "3")][..], "before"),
            (&[("gender", "F")][..], "at most 500 rows"),
            (&[("from", "1"), ("to", "501")][..], "at most 500 rows"),
        ] {
            let e = query(pairs).unwrap_err();
            assert!(e.contains(says), "{pairs:?}: {e}");
        }
        let long = "x".repeat(MAX_SEARCH_BYTES + 1);
        assert!(query(&[("q", &long), ("to", "5")]).is_err());
    }
}
