//! embassy-time's driver on the SysTick: a 1 ms interrupt advancing a 64-bit tick count, and
//! the timer queue woken from it. QEMU's netduinoplus2 runs the core at a fixed 168 MHz (it has
//! no RCC model), which SysTick counts with CLKSOURCE = core.

use core::cell::{Cell, RefCell};
use core::task::Waker;

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::exception;
use critical_section::Mutex;
use embassy_time_driver::{Driver, TICK_HZ};
use embassy_time_queue_utils::Queue;

const CPU_HZ: u32 = 168_000_000;
const SYSTICK_HZ: u32 = 1_000;
const _: () = assert!(TICK_HZ.is_multiple_of(SYSTICK_HZ as u64));
const TICKS_PER_IRQ: u64 = TICK_HZ / SYSTICK_HZ as u64;

struct SysTickDriver {
    ticks: Mutex<Cell<u64>>,
    alarm: Mutex<Cell<u64>>,
    queue: Mutex<RefCell<Queue>>,
}

impl Driver for SysTickDriver {
    fn now(&self) -> u64 {
        critical_section::with(|cs| self.ticks.borrow(cs).get())
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        critical_section::with(|cs| {
            let mut q = self.queue.borrow(cs).borrow_mut();
            if q.schedule_wake(at, waker) {
                let now = self.ticks.borrow(cs).get();
                self.alarm.borrow(cs).set(q.next_expiration(now));
            }
        });
    }
}

embassy_time_driver::time_driver_impl!(static DRIVER: SysTickDriver = SysTickDriver {
    ticks: Mutex::new(Cell::new(0)),
    alarm: Mutex::new(Cell::new(u64::MAX)),
    queue: Mutex::new(RefCell::new(Queue::new())),
});

#[exception]
fn SysTick() {
    critical_section::with(|cs| {
        let now = DRIVER.ticks.borrow(cs).get() + TICKS_PER_IRQ;
        DRIVER.ticks.borrow(cs).set(now);
        if now >= DRIVER.alarm.borrow(cs).get() {
            let next = DRIVER.queue.borrow(cs).borrow_mut().next_expiration(now);
            DRIVER.alarm.borrow(cs).set(next);
        }
    });
}

/// Starts the 1 ms SysTick.
pub fn init(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(CPU_HZ / SYSTICK_HZ - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}
