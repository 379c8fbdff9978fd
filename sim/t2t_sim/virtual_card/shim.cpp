// The virtual card: a C API around the Verilated top level, loaded by Python with ctypes.
//
// Bulk work stays in C++: RX beats are queued per port and fed one per clock while the model runs; TX beats are
// collected into a buffer; AXI4-Lite transactions run the clock until the bank answers. Python makes one call
// per batch, never one per cycle.
//
// Port names: Amaranth names the top's ports `axil__awaddr`, `rx_a__payload`, ...; Verilator escapes the double
// underscore as `___05F`, so those members read `axil___05Fawaddr` here.
#include <algorithm>
#include <cstdint>
#include <deque>
#include <vector>

#include "Vt2t_top.h"
#include "verilated.h"

namespace {

// Flag bits of a beat as exchanged with Python (match t2t_sim.virtual_card.BEAT_FLAGS).
constexpr uint8_t FLAG_FIRST = 1, FLAG_LAST = 2, FLAG_ERROR = 4, FLAG_IDLE = 8;
// MacBeat payload layout: data[0:64], keep[64:72], first[72], last[73], error[74].
constexpr int KEEP_LSB = 64, FIRST_BIT = 72, LAST_BIT = 73, ERROR_BIT = 74;
// Taps: copies of a stream's transfers (top-level ports `bbo` and `order_tap`), recorded with their cycle. Each
// payload is a VlWide, whose storage is its 32-bit words, least significant first.
enum { TAP_BBO = 0, TAP_ORDER = 1, TAP_COUNT = 2 };
constexpr size_t TAP_WORDS[TAP_COUNT] = {sizeof(Vt2t_top::bbo___05Fpayload) / sizeof(uint32_t),
                                         sizeof(Vt2t_top::order_tap___05Fpayload) / sizeof(uint32_t)};

struct Tap {
    size_t words_per_entry = 0;
    std::vector<uint32_t> words;
    std::vector<uint64_t> cycles;

    void record(const void* payload, uint64_t cycle) {
        const uint32_t* first = static_cast<const uint32_t*>(payload);
        words.insert(words.end(), first, first + words_per_entry);
        cycles.push_back(cycle);
    }
};
// An AXI4-Lite transaction that takes longer than this has hung the bank: report it instead of spinning.
constexpr int AXI_TIMEOUT_CYCLES = 1000;

struct Beat {
    uint64_t data;
    uint8_t keep;
    uint8_t flags;
};

void set_payload(VlWide<3>& wide, const Beat& beat) {
    wide[0] = static_cast<uint32_t>(beat.data);
    wide[1] = static_cast<uint32_t>(beat.data >> 32);
    wide[2] = static_cast<uint32_t>(beat.keep) | (static_cast<uint32_t>((beat.flags & FLAG_FIRST) != 0) << (FIRST_BIT - 64)) |
              (static_cast<uint32_t>((beat.flags & FLAG_LAST) != 0) << (LAST_BIT - 64)) |
              (static_cast<uint32_t>((beat.flags & FLAG_ERROR) != 0) << (ERROR_BIT - 64));
}

Beat get_payload(const VlWide<3>& wide) {
    Beat beat;
    beat.data = static_cast<uint64_t>(wide[0]) | (static_cast<uint64_t>(wide[1]) << 32);
    beat.keep = static_cast<uint8_t>(wide[2] & 0xff);
    beat.flags = static_cast<uint8_t>((((wide[2] >> (FIRST_BIT - 64)) & 1) ? FLAG_FIRST : 0) |
                                      (((wide[2] >> (LAST_BIT - 64)) & 1) ? FLAG_LAST : 0) |
                                      (((wide[2] >> (ERROR_BIT - 64)) & 1) ? FLAG_ERROR : 0));
    return beat;
}

struct Card {
    VerilatedContext context;
    Vt2t_top* top;
    std::deque<Beat> rx[2];
    std::vector<Beat> tx;
    std::vector<uint64_t> tx_cycles;
    Tap taps[TAP_COUNT];
    uint64_t cycle = 0;

    Card() {
        top = new Vt2t_top(&context);
        for (int tap = 0; tap < TAP_COUNT; ++tap) taps[tap].words_per_entry = TAP_WORDS[tap];
    }
    ~Card() {
        top->final();
        delete top;
    }

    // One rising edge: inputs were set for this cycle; sample outputs that the edge consumed, then clock.
    void tick() {
        for (int port = 0; port < 2; ++port) {
            bool valid = false;
            if (!rx[port].empty()) {
                const Beat& beat = rx[port].front();
                valid = !(beat.flags & FLAG_IDLE);
                if (port == 0) set_payload(top->rx_a___05Fpayload, beat); else set_payload(top->rx_b___05Fpayload, beat);
                rx[port].pop_front();
            }
            if (port == 0) top->rx_a___05Fvalid = valid; else top->rx_b___05Fvalid = valid;
        }
        top->tx___05Fready = 1;
        top->clk = 0;
        top->eval();
        if (top->bbo___05Fvalid) taps[TAP_BBO].record(&top->bbo___05Fpayload, cycle);
        if (top->order_tap___05Fvalid) taps[TAP_ORDER].record(&top->order_tap___05Fpayload, cycle);
        if (top->tx___05Fvalid) {
            tx.push_back(get_payload(top->tx___05Fpayload));
            tx_cycles.push_back(cycle);
        }
        top->clk = 1;
        top->eval();
        ++cycle;
    }
};

}  // namespace

extern "C" {

void* vc_create() { return new Card(); }

void vc_destroy(void* handle) { delete static_cast<Card*>(handle); }

void vc_reset(void* handle, uint32_t cycles) {
    Card* card = static_cast<Card*>(handle);
    card->top->rst = 1;
    for (uint32_t i = 0; i < cycles; ++i) card->tick();
    card->top->rst = 0;
}

void vc_run(void* handle, uint64_t cycles) {
    Card* card = static_cast<Card*>(handle);
    for (uint64_t i = 0; i < cycles; ++i) card->tick();
}

// Runs until both RX queues are empty, then `extra` more cycles (to drain the pipeline). Returns cycles run.
uint64_t vc_run_until_rx_drained(void* handle, uint64_t extra) {
    Card* card = static_cast<Card*>(handle);
    uint64_t start = card->cycle;
    while (!card->rx[0].empty() || !card->rx[1].empty()) card->tick();
    for (uint64_t i = 0; i < extra; ++i) card->tick();
    return card->cycle - start;
}

uint64_t vc_cycle(void* handle) { return static_cast<Card*>(handle)->cycle; }

// Returns the AXI response (0 OKAY, 2 SLVERR, 3 DECERR), or -1 if the bank did not answer in time.
int vc_axil_write(void* handle, uint32_t address, uint32_t data, uint32_t strobe) {
    Card* card = static_cast<Card*>(handle);
    Vt2t_top* top = card->top;
    top->axil___05Fawaddr = address;
    top->axil___05Fawprot = 0;
    top->axil___05Fwdata = data;
    top->axil___05Fwstrb = strobe;
    top->axil___05Fawvalid = 1;
    top->axil___05Fwvalid = 1;
    top->axil___05Fbready = 1;
    bool address_taken = false;
    for (int i = 0; i < AXI_TIMEOUT_CYCLES; ++i) {
        top->clk = 0;
        top->eval();
        bool handshake = top->axil___05Fawvalid && top->axil___05Fawready;
        bool response = top->axil___05Fbvalid;
        int bresp = top->axil___05Fbresp;
        card->tick();
        if (handshake) {
            address_taken = true;
            top->axil___05Fawvalid = 0;
            top->axil___05Fwvalid = 0;
        }
        if (response && address_taken) {
            top->axil___05Fbready = 0;
            return bresp;
        }
    }
    top->axil___05Fawvalid = top->axil___05Fwvalid = top->axil___05Fbready = 0;
    return -1;
}

int vc_axil_read(void* handle, uint32_t address, uint32_t* data) {
    Card* card = static_cast<Card*>(handle);
    Vt2t_top* top = card->top;
    top->axil___05Faraddr = address;
    top->axil___05Farprot = 0;
    top->axil___05Farvalid = 1;
    top->axil___05Frready = 1;
    bool address_taken = false;
    for (int i = 0; i < AXI_TIMEOUT_CYCLES; ++i) {
        top->clk = 0;
        top->eval();
        bool handshake = top->axil___05Farvalid && top->axil___05Farready;
        bool response = top->axil___05Frvalid;
        uint32_t rdata = top->axil___05Frdata;
        int rresp = top->axil___05Frresp;
        card->tick();
        if (handshake) {
            address_taken = true;
            top->axil___05Farvalid = 0;
        }
        if (response && address_taken) {
            top->axil___05Frready = 0;
            *data = rdata;
            return rresp;
        }
    }
    top->axil___05Farvalid = top->axil___05Frready = 0;
    return -1;
}

// Queues `count` beats on RX port 0 (A) or 1 (B); a beat with FLAG_IDLE is a cycle with valid low.
void vc_rx_push(void* handle, int port, const uint64_t* data, const uint8_t* keep, const uint8_t* flags,
                uint64_t count) {
    Card* card = static_cast<Card*>(handle);
    for (uint64_t i = 0; i < count; ++i) card->rx[port & 1].push_back(Beat{data[i], keep[i], flags[i]});
}

uint64_t vc_rx_pending(void* handle, int port) { return static_cast<Card*>(handle)->rx[port & 1].size(); }

uint64_t vc_tx_available(void* handle) { return static_cast<Card*>(handle)->tx.size(); }

// Moves up to `capacity` collected TX beats (and the cycle each left the card) out; returns how many.
uint64_t vc_tx_pop(void* handle, uint64_t* data, uint8_t* keep, uint8_t* flags, uint64_t* cycles,
                   uint64_t capacity) {
    Card* card = static_cast<Card*>(handle);
    uint64_t count = card->tx.size() < capacity ? card->tx.size() : capacity;
    for (uint64_t i = 0; i < count; ++i) {
        data[i] = card->tx[i].data;
        keep[i] = card->tx[i].keep;
        flags[i] = card->tx[i].flags;
        cycles[i] = card->tx_cycles[i];
    }
    card->tx.erase(card->tx.begin(), card->tx.begin() + count);
    card->tx_cycles.erase(card->tx_cycles.begin(), card->tx_cycles.begin() + count);
    return count;
}

uint64_t vc_tap_words(int tap) { return tap >= 0 && tap < TAP_COUNT ? TAP_WORDS[tap] : 0; }

uint64_t vc_tap_available(void* handle, int tap) { return static_cast<Card*>(handle)->taps[tap].cycles.size(); }

// Moves up to `capacity` recorded transfers of a tap (words and cycles) out; returns how many.
uint64_t vc_tap_pop(void* handle, int tap, uint32_t* words, uint64_t* cycles, uint64_t capacity) {
    Tap& t = static_cast<Card*>(handle)->taps[tap];
    uint64_t count = t.cycles.size() < capacity ? t.cycles.size() : capacity;
    std::copy(t.words.begin(), t.words.begin() + count * t.words_per_entry, words);
    std::copy(t.cycles.begin(), t.cycles.begin() + count, cycles);
    t.words.erase(t.words.begin(), t.words.begin() + count * t.words_per_entry);
    t.cycles.erase(t.cycles.begin(), t.cycles.begin() + count);
    return count;
}

}  // extern "C"
