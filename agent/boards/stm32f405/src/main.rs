//! The asyncmd agent on an STM32F405 (the pyboard), with embassy-stm32: the board's four LEDs,
//! the internal temperature sensor, the independent watchdog, and the agent's serial link on
//! USART1 (PB6 TX, PB7 RX: the pyboard's X9/X10) at 115200 baud.
//!
//! Tasks: `blink` (toggles the LED of its first argument, 1 to 4, every `sleep` seconds),
//! `sensor` (the internal temperature sensor as the stat `temp`, every `interval` seconds),
//! `watcher` (feeds the IWDG: a hung executor resets the board within 2 s), and `report`
//! (scheduled: first after 5 s, then every 10 s). Flash it with probe-rs: `cargo run --release`
//! in this directory (see the README).

#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use asyncmd_agent::{demo, Agent, Ctx, TaskDef, TaskFuture};
use asyncmd_proto::link::Stat;
use embassy_executor::Spawner;
use embassy_stm32::adc::{Adc, SampleTime, Temperature};
use embassy_stm32::gpio::{Level, Output, Speed};
use embassy_stm32::peripherals::{ADC1, IWDG, USART1};
use embassy_stm32::usart::{self, BufferedUart};
use embassy_stm32::wdg::IndependentWatchdog;
use embassy_stm32::{bind_interrupts, Peri};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::blocking_mutex::Mutex;
use embassy_time::Timer;
use static_cell::{ConstStaticCell, StaticCell};

/// Bytes of the journal ring.
const RING_BYTES: usize = 4 * 1024;
/// Bytes of the heap, taken from the RAM above .bss (see the QEMU board for why this much).
const HEAP_BYTES: usize = 64 * 1024;

#[global_allocator]
static HEAP: embedded_alloc::LlffHeap = embedded_alloc::LlffHeap::empty();

static RING: ConstStaticCell<[u8; RING_BYTES]> = ConstStaticCell::new([0; RING_BYTES]);
static AGENT: StaticCell<Agent> = StaticCell::new();
static TX_BUF: ConstStaticCell<[u8; 512]> = ConstStaticCell::new([0; 512]);
static RX_BUF: ConstStaticCell<[u8; 512]> = ConstStaticCell::new([0; 512]);

/// The pyboard's LEDs: red, green, yellow, blue.
static LEDS: Mutex<CriticalSectionRawMutex, RefCell<Vec<Output<'static>>>> =
    Mutex::new(RefCell::new(Vec::new()));
/// The ADC and its temperature channel.
type Thermometer = (Adc<'static, ADC1>, Temperature);
static THERMOMETER: Mutex<CriticalSectionRawMutex, RefCell<Option<Thermometer>>> =
    Mutex::new(RefCell::new(None));
/// The independent watchdog, once unleashed.
static IWDG_DOG: Mutex<
    CriticalSectionRawMutex,
    RefCell<Option<IndependentWatchdog<'static, IWDG>>>,
> = Mutex::new(RefCell::new(None));

bind_interrupts!(struct Irqs {
    USART1 => usart::BufferedInterruptHandler<USART1>;
});

/// Toggles LED `args[0]` (1 to 4) every `sleep` seconds.
fn blink(ctx: Ctx) -> TaskFuture {
    Box::pin(async move {
        let led = ctx
            .args
            .first()
            .and_then(Stat::as_i64)
            .unwrap_or(1)
            .clamp(1, 4) as usize;
        let sleep_ms = ctx.kwarg_ms("sleep", 1000);
        let mut toggles = 0u64;
        loop {
            LEDS.lock(|l| l.borrow_mut().get_mut(led - 1).map(|p| p.toggle()));
            toggles += 1;
            ctx.set_stat("toggles", toggles);
            ctx.info(&format!("LED {led} toggled!"));
            Timer::after_millis(sleep_ms.max(1)).await;
        }
    })
}

/// The internal temperature sensor: 25 °C at 0.76 V, 2.5 mV/°C (RM0090), as tenths.
fn sensor(ctx: Ctx) -> TaskFuture {
    Box::pin(async move {
        let every_ms = ctx.kwarg_ms("interval", 2000);
        loop {
            let raw = THERMOMETER.lock(|t| {
                t.borrow_mut()
                    .as_mut()
                    .map(|(adc, ch)| adc.blocking_read(ch, SampleTime::CYCLES480))
            });
            let Some(raw) = raw else {
                return Err("no ADC".into());
            };
            // mV at a 3.3 V reference over 12 bits; tenths of a degree.
            // In i32, which the Cortex-M4 divides in hardware.
            let mv = i32::from(raw) * 3300 / 4095;
            let tenths = (mv - 760) * 10 * 10 / 25 + 250;
            ctx.set_stat("temp", Stat::Decimal(tenths.into(), 1));
            let sign = if tenths < 0 { "-" } else { "" };
            let t = tenths.unsigned_abs();
            ctx.info(&format!("temp {sign}{}.{} C", t / 10, t % 10));
            Timer::after_millis(every_ms.max(1)).await;
        }
    })
}

/// Feeds the IWDG every 500 ms: if the executor hangs, the board resets within 2 s.
fn watcher(ctx: Ctx) -> TaskFuture {
    Box::pin(async move {
        let mut pets = 0u64;
        loop {
            IWDG_DOG.lock(|w| w.borrow_mut().as_mut().map(|d| d.pet()));
            pets += 1;
            if pets % 20 == 1 {
                ctx.set_stat("pets", pets);
            }
            Timer::after_millis(500).await;
        }
    })
}

fn tasks() -> Vec<TaskDef> {
    vec![
        TaskDef::new("blink", blink)
            .args(vec![Stat::Int(1)])
            .at_boot(),
        TaskDef::new("sensor", sensor).at_boot(),
        TaskDef::new("watcher", watcher).at_boot(),
        TaskDef::new("report", demo::report).on(demo::every(5, 10)),
    ]
}

asyncmd_agent::embassy_tasks!(4);

#[embassy_executor::task]
async fn link(agent: &'static Agent, uart: BufferedUart<'static>) {
    let (tx, rx) = uart.split();
    agent.serve(rx, tx).await
}

fn leds(pins: [Peri<'static, embassy_stm32::gpio::AnyPin>; 4]) {
    let outs = pins.map(|p| Output::new(p, Level::Low, Speed::Low));
    LEDS.lock(|l| l.borrow_mut().extend(outs));
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The IWDG, unfed, resets the board.
    loop {
        cortex_m::asm::wfi();
    }
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    // SAFETY: called once, before anything allocates; the stack grows down from the top of
    // RAM, far above __sheap + HEAP_BYTES.
    unsafe { HEAP.init(cortex_m_rt::heap_start() as usize, HEAP_BYTES) };
    let p = embassy_stm32::init(Default::default());
    leds([p.PA13.into(), p.PA14.into(), p.PA15.into(), p.PB4.into()]);
    let adc = Adc::new(p.ADC1);
    let temp = adc.enable_temperature();
    THERMOMETER.lock(|t| *t.borrow_mut() = Some((adc, temp)));
    let mut dog = IndependentWatchdog::new(p.IWDG, 2_000_000);
    dog.unleash();
    IWDG_DOG.lock(|w| *w.borrow_mut() = Some(dog));
    let mut config = usart::Config::default();
    config.baudrate = 115_200;
    let uart = BufferedUart::new(
        p.USART1,
        p.PB7,
        p.PB6,
        TX_BUF.take(),
        RX_BUF.take(),
        Irqs,
        config,
    )
    .expect("USART1 at 115200 baud");
    let agent = match Agent::new("pyboard", env!("CARGO_PKG_VERSION"), RING.take(), tasks()) {
        Ok(a) => AGENT.init(a),
        Err(e) => panic!("{e}"),
    };
    agent.log_agent(asyncmd_proto::Level::Info, "agent started");
    spawn_agent(spawner, agent);
    spawner.spawn(link(agent, uart).expect("one link"));
}
