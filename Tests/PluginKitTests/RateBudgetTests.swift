import PluginKit
import Testing

@Suite struct RateBudgetTests {
    let second: UInt64 = 1_000_000_000

    @Test func aKeyGetsItsLimitPerWindowAndOthersAreUntouched() {
        var budget = RateBudget(limit: 3, windowSeconds: 60)
        func take(_ key: String, at seconds: UInt64) -> Bool { budget.take(key, now: seconds * second) }
        #expect(take("203.0.113.7", at: 5) && take("203.0.113.7", at: 6) && take("203.0.113.7", at: 7))
        #expect(!take("203.0.113.7", at: 15))
        // Another address is not held back by the first one's use.
        #expect(take("198.51.100.9", at: 15))
        #expect(budget.remaining("203.0.113.7", now: 15 * second) == 0)
        #expect(budget.secondsUntilAvailable("203.0.113.7", now: 15 * second) == 50)
    }

    @Test func usesLeaveTheWindowOneByOne() {
        var budget = RateBudget(limit: 2, windowSeconds: 60)
        func take(at seconds: UInt64) -> Bool { budget.take("a", now: seconds * second) }
        #expect(take(at: 0) && take(at: 30))
        #expect(!take(at: 59))
        #expect(take(at: 60))
        #expect(!take(at: 89))
        #expect(take(at: 90))
    }

    @Test func forgottenKeysDoNotPileUp() {
        var budget = RateBudget(limit: 1, windowSeconds: 60)
        for i in 0..<1_000 { _ = budget.take("10.0.\(i / 256).\(i % 256)", now: UInt64(i) * 1_000) }
        #expect(budget.keyCount == 1_000)
        _ = budget.take("late", now: 3_600 * second)
        #expect(budget.keyCount == 1)
    }

    @Test func aZeroLimitRefusesEverything() {
        var budget = RateBudget(limit: 0)
        let taken = budget.take("a", now: 0)
        #expect(!taken)
    }
}
