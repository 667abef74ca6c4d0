extension SessionDescription {
    /// The description as SDP text, every line ended by `\r\n`, in RFC 8866 order.
    public var serialized: String {
        var lines: [String] = ["v=\(version)", "o=" + origin.value, "s=" + sessionName]
        if let sessionInformation { lines.append("i=" + sessionInformation) }
        if let uri { lines.append("u=" + uri) }
        lines += emails.map { "e=" + $0 }
        lines += phones.map { "p=" + $0 }
        if let connection { lines.append("c=" + connection.value) }
        lines += bandwidths.map { "b=" + $0.text }
        for timing in timings {
            lines.append("t=\(timing.start) \(timing.stop)")
            lines += timing.repeats.map { "r=" + $0 }
        }
        if let timeZones { lines.append("z=" + timeZones) }
        if let encryptionKey { lines.append("k=" + encryptionKey) }
        lines += attributes.map(\.line)
        for section in media { section.appendLines(to: &lines) }
        return lines.joined(separator: "\r\n") + "\r\n"
    }
}

extension MediaDescription {
    /// This section as SDP text, every line ended by `\r\n`.
    public var serialized: String {
        var lines: [String] = []
        appendLines(to: &lines)
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    func appendLines(to lines: inout [String]) {
        let portText = "\(port)" + (portCount.map { "/\($0)" } ?? "")
        lines.append((["m=" + kind.rawValue, portText, transportProtocol] + formats).joined(separator: " "))
        if let title { lines.append("i=" + title) }
        lines += connections.map { "c=" + $0.value }
        lines += bandwidths.map { "b=" + $0.text }
        if let encryptionKey { lines.append("k=" + encryptionKey) }
        lines += attributes.map(\.line)
    }
}
