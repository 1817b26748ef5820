//! USART1 (QEMU's serial0) by its registers, as an embedded-io-async byte stream: the RXNE
//! interrupt (IRQ 37) moves received bytes into a pipe the reader awaits; writes go out byte
//! by byte (QEMU sends at once).

use core::convert::Infallible;

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::pipe::Pipe;

const BASE: usize = 0x4001_1000;
const SR: *mut u32 = BASE as *mut u32;
const DR: *mut u32 = (BASE + 0x04) as *mut u32;
const BRR: *mut u32 = (BASE + 0x08) as *mut u32;
const CR1: *mut u32 = (BASE + 0x0C) as *mut u32;
const RCC_APB2ENR: *mut u32 = 0x4002_3844 as *mut u32;
const SR_RXNE: u32 = 1 << 5;
const SR_TXE: u32 = 1 << 7;
const CR1_RE: u32 = 1 << 2;
const CR1_TE: u32 = 1 << 3;
const CR1_RXNEIE: u32 = 1 << 5;
const CR1_UE: u32 = 1 << 13;
const USART1_IRQ: u16 = 37;

#[derive(Clone, Copy)]
struct Irq(u16);

// SAFETY: 37 is USART1's interrupt number on the STM32F405.
unsafe impl cortex_m::interrupt::InterruptNumber for Irq {
    fn number(self) -> u16 {
        self.0
    }
}

/// Bytes the interrupt took off the line, for the reader. When it is full, bytes are dropped:
/// the link's framing resynchronises.
static RX: Pipe<CriticalSectionRawMutex, 256> = Pipe::new();

fn read_reg(r: *mut u32) -> u32 {
    // SAFETY: a USART1 register, always mapped.
    unsafe { r.read_volatile() }
}

fn write_reg(r: *mut u32, v: u32) {
    // SAFETY: a USART1 or RCC register, always mapped; this driver is their only user.
    unsafe { r.write_volatile(v) }
}

/// Clocks and enables USART1 (115200 baud at 16 MHz on silicon; QEMU needs neither).
pub fn init() {
    write_reg(RCC_APB2ENR, read_reg(RCC_APB2ENR) | (1 << 4));
    write_reg(BRR, 0x8B);
    write_reg(CR1, CR1_UE | CR1_TE | CR1_RE | CR1_RXNEIE);
    // SAFETY: the handler below is ready before the interrupt is unmasked.
    unsafe { cortex_m::peripheral::NVIC::unmask(Irq(USART1_IRQ)) };
}

/// The line as a plain text sink, for the panic handler.
pub struct Raw;

impl core::fmt::Write for Raw {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            while read_reg(SR) & SR_TXE == 0 {}
            write_reg(DR, u32::from(b));
        }
        Ok(())
    }
}

/// The receiving half.
pub struct Rx;
/// The sending half.
pub struct Tx;

impl embedded_io_async::ErrorType for Rx {
    type Error = Infallible;
}

impl embedded_io_async::ErrorType for Tx {
    type Error = Infallible;
}

impl embedded_io_async::Read for Rx {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        Ok(RX.read(buf).await)
    }
}

impl embedded_io_async::Write for Tx {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        for &b in buf {
            while read_reg(SR) & SR_TXE == 0 {}
            write_reg(DR, u32::from(b));
        }
        Ok(buf.len())
    }

    async fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

/// USART1's interrupt.
extern "C" fn usart1() {
    // Reading DR is what lowers QEMU's (level) interrupt line, so the byte is taken here.
    while read_reg(SR) & SR_RXNE != 0 {
        let _ = RX.try_write(&[read_reg(DR) as u8]);
    }
}

/// The STM32F405's interrupt vectors (82 of them): USART1's is ours, the rest cortex-m-rt's
/// default handler. cortex-m-rt's `device` feature leaves this table to the board, which would
/// otherwise carry 240 vectors, 632 bytes more of flash.
#[link_section = ".vector_table.interrupts"]
#[no_mangle]
static __INTERRUPTS: [unsafe extern "C" fn(); 82] = {
    extern "C" {
        fn DefaultHandler();
    }
    let mut v = [DefaultHandler as unsafe extern "C" fn(); 82];
    v[USART1_IRQ as usize] = usart1;
    v
};
