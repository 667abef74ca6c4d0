import Testing
@testable import RTC

@Suite struct RTCModuleTests {
    @Test func hasAVersion() { #expect(!RTC.version.isEmpty) }
}
