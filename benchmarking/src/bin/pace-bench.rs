//! `pace-bench`: measures pace from outside. See the crate docs.

use std::time::Duration;

use clap::Parser;
use ingest::KafkaConfig;

/// Measures standings throughput of a running `pace pipeline` through Kafka.
#[derive(Parser, Debug)]
#[command(name = "pace-bench", version, about)]
struct Cli {
    /// Kafka bootstrap servers.
    #[arg(long, env = "PACE_BROKERS")]
    brokers: String,
    /// Topic prefix the pipeline under test uses.
    #[arg(long, env = "PACE_TOPIC_PREFIX", default_value = "")]
    topic_prefix: String,
    /// Participants in the generated race.
    #[arg(long, default_value_t = 2000)]
    participants: usize,
    /// Seconds of race (one point per participant per second, a few dropped).
    #[arg(long, default_value_t = 300)]
    seconds: usize,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let kafka = KafkaConfig::new(cli.brokers).with_topic_prefix(&cli.topic_prefix);
    let report = pace_benchmarking::standings::run(
        &kafka,
        cli.participants,
        cli.seconds,
        Duration::from_secs(cli.timeout),
    )?;
    #[allow(clippy::print_stdout)]
    {
        println!("{}", report.json());
    }
    Ok(())
}
