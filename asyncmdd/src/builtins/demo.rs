//! The example builtin services of asyncmd: `hello` (toggles a simulated LED and reports a
//! simulated temperature), `world` (runs, logs and finishes: made to be scheduled) and `sensor`
//! (a simulated BME280: temperature, humidity and pressure as stats, a reading logged every
//! `interval`). Their arguments come from `services.config` kwargs.

use std::time::Duration;

use asyncmd_proto::Level;
use serde_json::{json, Map};

use super::kwargs::{duration, real};
use super::Context;

/// A tick every `every` that skips ticks missed during a stall rather than bursting.
fn ticker(every: Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tick
}

/// A smooth, repeatable wobble for simulated readings: no randomness, so tests can rely on
/// ranges, and two sensors with different `seed`s differ.
fn wobble(t: f64, seed: f64) -> f64 {
    (t * 0.7 + seed).sin() * 0.6 + (t * 0.13 + seed * 2.0).sin() * 0.4
}

/// `hello`: every `sleep` seconds (default 1) toggles an LED, starting with the first of its
/// `args` (as asyncmd's `hello` takes it) or kwargs `led` (default 1), cycling 1-4; logs
/// `LED n toggled!`, and sets the stat `temp` to a simulated temperature.
pub async fn hello(mut ctx: Context) -> Result<(), String> {
    let sleep = duration(&ctx.kwargs, "sleep", Duration::from_secs(1))?;
    let first = match ctx.args.first() {
        Some(v) => v
            .as_f64()
            .filter(|x| *x >= 1.0)
            .ok_or_else(|| format!("args[0] must be an LED number, not {v}"))?,
        None => real(&ctx.kwargs, "led", 1.0)?,
    };
    let mut led = first as u32;
    let mut t = 0.0;
    let mut tick = ticker(sleep);
    loop {
        tokio::select! {
            _ = ctx.stopped() => return Ok(()),
            _ = tick.tick() => {
                ctx.log(Level::Info, &format!("LED {led} toggled!"));
                let mut stats = Map::new();
                stats.insert("temp".into(), json!(format!("{:.5} C", 25.0 + 2.0 * wobble(t, 1.0))));
                stats.insert("led".into(), json!(led));
                ctx.set_stats(stats);
                led = led % 4 + 1;
                t += sleep.as_secs_f64();
            }
        }
    }
}

/// `world`: logs that it runs, waits `sleep` seconds (default 1), logs that it is done, and
/// ends well: a unit made for `[schedule]`.
pub async fn world(mut ctx: Context) -> Result<(), String> {
    let sleep = duration(&ctx.kwargs, "sleep", Duration::from_secs(1))?;
    ctx.log(Level::Info, "world: started");
    tokio::select! {
        _ = ctx.stopped() => return Ok(()),
        _ = tokio::time::sleep(sleep) => {}
    }
    ctx.log(Level::Info, "world: done");
    Ok(())
}

/// `sensor`: a simulated BME280. Every `interval` seconds (default 5) it reads temperature (°C),
/// humidity (%) and pressure (hPa), publishes them as stats and logs the reading.
pub async fn sensor(mut ctx: Context) -> Result<(), String> {
    let interval = duration(&ctx.kwargs, "interval", Duration::from_secs(5))?;
    let seed = real(&ctx.kwargs, "seed", 3.0)?;
    let mut t = 0.0;
    let mut tick = ticker(interval);
    loop {
        tokio::select! {
            _ = ctx.stopped() => return Ok(()),
            _ = tick.tick() => {
                let temp = 22.0 + 3.0 * wobble(t, seed);
                let hum = 45.0 + 10.0 * wobble(t, seed + 1.0);
                let press = 1013.25 + 6.0 * wobble(t, seed + 2.0);
                let mut stats = Map::new();
                stats.insert("temperature".into(), json!((temp * 100.0).round() / 100.0));
                stats.insert("humidity".into(), json!((hum * 100.0).round() / 100.0));
                stats.insert("pressure".into(), json!((press * 100.0).round() / 100.0));
                ctx.set_stats(stats);
                ctx.log(
                    Level::Info,
                    &format!("BME280: {temp:.2} C, {hum:.2} %, {press:.2} hPa"),
                );
                t += interval.as_secs_f64();
            }
        }
    }
}
