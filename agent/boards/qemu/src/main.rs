//! The asyncmd agent on QEMU's netduinoplus2 (an STM32F405): the board to try the agent on
//! with no board at all. embassy-stm32's `init()` hangs on QEMU (it waits for RCC ready bits
//! QEMU does not model), so this board skips the HAL: USART1 and SysTick by their registers.
//!
//! Tasks: `blink` (a simulated LED on pin 2, a journal line per toggle), `sensor` (a simulated
//! temperature as a stat), and `report` (scheduled: every 10 s, first after 5 s).

#![no_std]
#![no_main]

extern crate alloc;

mod executor;
mod time;
mod usart;

use alloc::boxed::Box;
use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use asyncmd_agent::{demo, Agent, Ctx, TaskDef, TaskFuture};
use asyncmd_proto::link::Stat;
use embassy_time::Timer;
use static_cell::{ConstStaticCell, StaticCell};

/// Bytes of the journal ring.
const RING_BYTES: usize = 4 * 1024;
/// Bytes of the heap, taken from the RAM above .bss: task runs, request and answer messages.
/// A hostile 2 KiB frame can make the decoder reserve about 24 KiB (a sequence's length is
/// taken as a size hint), so there is room for that beside the rest.
const HEAP_BYTES: usize = 64 * 1024;

#[global_allocator]
static HEAP: embedded_alloc::LlffHeap = embedded_alloc::LlffHeap::empty();

static RING: ConstStaticCell<[u8; RING_BYTES]> = ConstStaticCell::new([0; RING_BYTES]);
static AGENT: StaticCell<Agent> = StaticCell::new();
static EXECUTOR: StaticCell<executor::Executor> = StaticCell::new();

/// Toggles a simulated LED on the pin of its first argument, every `sleep` seconds.
fn blink(ctx: Ctx) -> TaskFuture {
    Box::pin(async move {
        let pin = ctx.args.first().and_then(Stat::as_i64);
        // As u32: each integer type's formatting is its own code in flash.
        let pin = pin.and_then(|p| u32::try_from(p).ok()).unwrap_or(2);
        let sleep_ms = ctx.kwarg_ms("sleep", 1000);
        let mut toggles = 0u64;
        loop {
            ctx.info(&format!("LED {pin} on"));
            Timer::after_millis(200).await;
            ctx.info(&format!("LED {pin} off"));
            toggles += 1;
            ctx.set_stat("toggles", toggles);
            Timer::after_millis(sleep_ms.max(1)).await;
        }
    })
}

/// A simulated temperature sensor: a slow triangle wave around 21 °C, in tenths.
fn sensor(ctx: Ctx) -> TaskFuture {
    Box::pin(async move {
        let every_ms = ctx.kwarg_ms("interval", 2000);
        let mut t: u32 = 0;
        loop {
            let phase = t % 40;
            let tenths = 190
                + if phase < 20 {
                    phase * 2
                } else {
                    (40 - phase) * 2
                };
            ctx.set_stat("temp", Stat::Decimal(tenths.into(), 1));
            ctx.info(&format!("temp {}.{} C", tenths / 10, tenths % 10));
            t += 1;
            Timer::after_millis(every_ms.max(1)).await;
        }
    })
}

fn tasks() -> Vec<TaskDef> {
    vec![
        TaskDef::new("blink", blink)
            .args(vec![Stat::Int(2)])
            .kwarg("sleep", 1)
            .at_boot(),
        TaskDef::new("sensor", sensor).at_boot(),
        TaskDef::new("report", demo::report).on(demo::every(5, 10)),
    ]
}

/// Says on the serial line that it panicked, then resets the board, as the real boards' unfed
/// watchdog does: the host's reader drops the words as garbage and sees the board start again.
/// Where it panicked is left to a debugger: formatting the panic message and its location
/// would keep every panic site's text and more than 16 KiB of formatting code in flash.
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    cortex_m::interrupt::disable();
    let _ = core::fmt::write(&mut usart::Raw, format_args!("\0panic: resetting\0"));
    cortex_m::peripheral::SCB::sys_reset()
}

asyncmd_agent::embassy_tasks!(3);

#[embassy_executor::task]
async fn link(agent: &'static Agent) {
    agent.serve(usart::Rx, usart::Tx).await
}

#[cortex_m_rt::entry]
fn main() -> ! {
    // The heap is the free RAM above .bss (cortex-m-rt's __sheap), not a static buffer.
    // SAFETY: called once, before anything allocates; the stack grows down from the top of
    // RAM, far above __sheap + HEAP_BYTES.
    unsafe { HEAP.init(cortex_m_rt::heap_start() as usize, HEAP_BYTES) };
    let cp = cortex_m::Peripherals::take().expect("the core peripherals, once");
    time::init(cp.SYST);
    usart::init();
    let agent = match Agent::new("qemu", env!("CARGO_PKG_VERSION"), RING.take(), tasks()) {
        Ok(a) => AGENT.init(a),
        Err(e) => panic!("{e}"),
    };
    agent.log_agent(asyncmd_proto::Level::Info, "agent started");
    EXECUTOR.init(executor::Executor::new()).run(|spawner| {
        spawn_agent(spawner, agent);
        spawner.spawn(link(agent).expect("one link"));
    })
}
