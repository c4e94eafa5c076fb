//! Every archived topic, opened: the archiver loops over the `topics!`
//! table of `schemas::topics` ([`schemas::Topics::archived`]), which gives
//! each archived topic with its record type, and names no view here.

use std::path::Path;

use schemas::Topics;
use schemas::archive::{Archived, EachTopic};

use super::topic::{Topic, open_topic};
use crate::SinkError;

/// Every archived topic, with the state of the archive at `archive` (or
/// none, for counting).
pub(crate) fn topics(t: &Topics, archive: Option<&Path>) -> Result<Vec<Box<dyn Topic>>, SinkError> {
    struct Open<'a> {
        archive: Option<&'a Path>,
        topics: Result<Vec<Box<dyn Topic>>, SinkError>,
    }
    impl EachTopic for Open<'_> {
        fn topic<A: Archived>(&mut self, name: &str) {
            if let Ok(topics) = &mut self.topics {
                match open_topic::<A>(name, self.archive) {
                    Ok(t) => topics.push(t),
                    Err(e) => self.topics = Err(e),
                }
            }
        }
    }
    let mut open = Open {
        archive,
        topics: Ok(Vec::new()),
    };
    t.archived(&mut open);
    open.topics
}
