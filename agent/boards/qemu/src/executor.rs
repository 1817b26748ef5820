//! A thread-mode executor that sleeps with WFI: QEMU 7.2 treats WFE (the stock executor's
//! sleep) as a yield, which would spin a host core.

use core::marker::PhantomData;
use core::sync::atomic::{AtomicBool, Ordering};

use embassy_executor::{raw, Spawner};

static WORK: AtomicBool = AtomicBool::new(false);

#[unsafe(export_name = "__pender")]
fn pender(_context: *mut ()) {
    WORK.store(true, Ordering::Release);
}

/// The executor.
pub struct Executor {
    inner: raw::Executor,
    _not_send: PhantomData<*mut ()>,
}

impl Executor {
    /// A new executor.
    pub fn new() -> Executor {
        Executor {
            inner: raw::Executor::new(core::ptr::null_mut()),
            _not_send: PhantomData,
        }
    }

    /// Spawns what `init` spawns, then runs for ever, sleeping while nothing is ready.
    pub fn run(&'static mut self, init: impl FnOnce(Spawner)) -> ! {
        init(self.inner.spawner());
        loop {
            WORK.store(false, Ordering::Relaxed);
            // SAFETY: polled from this one thread only.
            unsafe { self.inner.poll() };
            cortex_m::interrupt::disable();
            if !WORK.load(Ordering::Acquire) {
                // A pending interrupt wakes WFI even with interrupts masked.
                cortex_m::asm::wfi();
            }
            // SAFETY: re-enabling what was disabled above; the handlers run now.
            unsafe { cortex_m::interrupt::enable() };
        }
    }
}
