//! The asyncmd agent on an ESP32-C3, with esp-hal and esp-rtos's embassy executor: the agent's
//! serial link on the USB-serial-JTAG port (the board's USB socket), and the LED on GPIO8 (the
//! ESP32-C3-DevKitM-1's).
//!
//! Tasks: `blink` (toggles the LED every `sleep` seconds) and `report` (scheduled: first after
//! 5 s, then every 10 s). Flash it with espflash: `cargo run --release` in this directory.
//! Nothing here can run ESP32 code: CI builds and measures this firmware only.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use asyncmd_agent::{demo, Agent, Ctx, TaskDef, TaskFuture};
use embassy_executor::Spawner;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::blocking_mutex::Mutex;
use embassy_time::Timer;
use esp_hal::gpio::{Level, Output, OutputConfig};
use esp_hal::timer::timg::TimerGroup;
use esp_hal::usb::usb_serial_jtag::UsbSerialJtag;
use static_cell::{ConstStaticCell, StaticCell};

esp_bootloader_esp_idf::esp_app_desc!();

/// Bytes of the journal ring.
const RING_BYTES: usize = 4 * 1024;
/// Bytes of the heap (a static buffer here: esp-hal's linker script has no free-RAM symbol).
const HEAP_BYTES: usize = 64 * 1024;

#[global_allocator]
static HEAP: embedded_alloc::LlffHeap = embedded_alloc::LlffHeap::empty();
static HEAP_MEM: ConstStaticCell<[u8; HEAP_BYTES]> = ConstStaticCell::new([0; HEAP_BYTES]);

static RING: ConstStaticCell<[u8; RING_BYTES]> = ConstStaticCell::new([0; RING_BYTES]);
static AGENT: StaticCell<Agent> = StaticCell::new();
static LED: Mutex<CriticalSectionRawMutex, RefCell<Option<Output<'static>>>> =
    Mutex::new(RefCell::new(None));

/// Toggles the LED every `sleep` seconds.
fn blink(ctx: Ctx) -> TaskFuture {
    Box::pin(async move {
        let sleep_ms = ctx.kwarg_ms("sleep", 1000);
        let mut toggles = 0u64;
        loop {
            LED.lock(|l| l.borrow_mut().as_mut().map(|p| p.toggle()));
            toggles += 1;
            ctx.set_stat("toggles", toggles);
            ctx.info("LED toggled!");
            Timer::after_millis(sleep_ms.max(1)).await;
        }
    })
}

fn tasks() -> Vec<TaskDef> {
    vec![
        TaskDef::new("blink", blink).at_boot(),
        TaskDef::new("report", demo::report).on(demo::every(5, 10)),
    ]
}

asyncmd_agent::embassy_tasks!(2);

#[embassy_executor::task]
async fn link(agent: &'static Agent, usb: UsbSerialJtag<'static, esp_hal::Async>) {
    let (rx, tx) = usb.split();
    agent.serve(rx, tx).await
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[esp_rtos::main]
async fn main(spawner: Spawner) -> ! {
    let heap = HEAP_MEM.take();
    // SAFETY: called once, before anything allocates, over a buffer nothing else uses.
    unsafe { HEAP.init(heap.as_mut_ptr() as usize, HEAP_BYTES) };
    let p = esp_hal::init(esp_hal::Config::default());
    let timg0 = TimerGroup::new(p.TIMG0);
    esp_rtos::start(timg0.timer0, p.FROM_CPU_INTR0);
    let led = Output::new(p.GPIO8, Level::High, OutputConfig::default());
    LED.lock(|l| *l.borrow_mut() = Some(led));
    let usb = UsbSerialJtag::new(p.USB_DEVICE).into_async();
    let agent = match Agent::new("esp32c3", env!("CARGO_PKG_VERSION"), RING.take(), tasks()) {
        Ok(a) => AGENT.init(a),
        Err(e) => panic!("{e}"),
    };
    agent.log_agent(asyncmd_proto::Level::Info, "agent started");
    spawn_agent(spawner, agent);
    spawner.spawn(link(agent, usb).expect("one link"));
    loop {
        Timer::after_secs(3600).await;
    }
}
