import Foundation
import Logging
import RTC
import Synchronization

/// Why a listener's certificate cannot be used, naming the listener's keys.
struct TLSSetupError: Error, Equatable, CustomStringConvertible {
    var listener: String
    var reason: String
    var description: String { "\(listener) TLS (certificate_file, key_file, self_signed): \(reason)" }
}

/// The certificate a TLS listener accepts new connections with. Certificates from files are read
/// again on `reload` (SIGHUP) and when the files change (`reloadIfChanged`, polled: certbot
/// replaces them by renaming, which no inotify watch on the old file would see); a reload that
/// fails keeps the certificate in use and says why. Connections already open keep the context
/// they started with.
final class ListenerCertificate: Sendable {
    let settings: HostConfig.TLS
    private let current: Mutex<TLSServerContext>
    /// The files' identity when last read (or tried), so a failed reload is not retried until
    /// they change again.
    private let stamps: Mutex<FileStamps?>
    /// Self-signed certificates are renewed when they would end within this long.
    static let selfSignedRenewal: TimeInterval = 30 * 86_400

    /// - Parameters:
    ///   - addresses, hostNames: what a self-signed certificate names.
    init(settings: HostConfig.TLS, listener: String, addresses: [String], hostNames: [String], logger: Logger) throws(TLSSetupError) {
        self.settings = settings
        do throws(TLSError) {
            let context: TLSServerContext
            if let certificateFile = settings.certificateFile, let keyFile = settings.keyFile {
                let before = FileStamps(certificateFile, keyFile)
                if settings.selfSigned {
                    context = try Self.keptSelfSigned(certificateFile: certificateFile, keyFile: keyFile, addresses: addresses,
                                                      hostNames: hostNames, logger: logger)
                } else {
                    context = try TLSServerContext.load(certificateFile: certificateFile, keyFile: keyFile)
                }
                stamps = Mutex(settings.selfSigned ? FileStamps(certificateFile, keyFile) : before)
            } else {
                let made = try SelfSignedCertificate.generate(addresses: addresses, hostNames: hostNames)
                context = try TLSServerContext.load(certificatePEM: made.certificatePEM, keyPEM: made.keyPEM)
                stamps = Mutex(nil)
            }
            current = Mutex(context)
        } catch {
            throw TLSSetupError(listener: listener, reason: error.message)
        }
    }

    var context: TLSServerContext { current.withLock { $0 } }

    /// Reads the files again. Returns the reason when the certificate in use stays.
    @discardableResult
    func reload(logger: Logger, listener: String, why: String) -> String? {
        guard let certificateFile = settings.certificateFile, let keyFile = settings.keyFile else { return nil }
        stamps.withLock { $0 = FileStamps(certificateFile, keyFile) }
        do throws(TLSError) {
            let fresh = try TLSServerContext.load(certificateFile: certificateFile, keyFile: keyFile)
            let old = current.withLock { c in
                defer { c = fresh }
                return c
            }
            let metadata: Logger.Metadata = [
                "listener": "\(listener)", "why": "\(why)", "sha256": "\(fresh.fingerprint)",
                "expires": "\(CertificateTime.text(fresh.notAfter))",
            ]
            if old.fingerprint != fresh.fingerprint {
                logger.notice("TLS certificate reloaded", metadata: metadata)
            } else {
                logger.info("TLS certificate read again: unchanged", metadata: metadata)
            }
            return nil
        } catch {
            logger.error("TLS certificate not reloaded: the one in use stays", metadata: [
                "listener": "\(listener)", "why": "\(why)", "reason": "\(error.message)",
            ])
            return error.message
        }
    }

    /// Reloads when either file's identity (inode, size, modification time) changed since the
    /// last read.
    func reloadIfChanged(logger: Logger, listener: String) {
        guard let certificateFile = settings.certificateFile, let keyFile = settings.keyFile else { return }
        let now = FileStamps(certificateFile, keyFile)
        guard stamps.withLock({ $0 != now }) else { return }
        reload(logger: logger, listener: listener, why: "the files changed")
    }

    /// The self-signed certificate kept in the two files: the one there while it loads and has
    /// more than `selfSignedRenewal` to run, else a new one written in their place.
    private static func keptSelfSigned(certificateFile: String, keyFile: String, addresses: [String], hostNames: [String],
                                       logger: Logger) throws(TLSError) -> TLSServerContext {
        if let kept = try? TLSServerContext.load(certificateFile: certificateFile, keyFile: keyFile),
            kept.notAfter.timeIntervalSinceNow > selfSignedRenewal {
            return kept
        }
        let made = try SelfSignedCertificate.generate(addresses: addresses, hostNames: hostNames)
        // The key first, readable by the owner alone, so a certificate never names a key not yet there.
        for (path, bytes, mode) in [(keyFile, made.keyPEM, 0o600), (certificateFile, made.certificatePEM, 0o644)] {
            guard FileManager.default.createFile(atPath: path, contents: Data(bytes), attributes: [.posixPermissions: mode]) else {
                throw TLSError("\(path): the self-signed certificate cannot be written there")
            }
        }
        logger.notice("made a self-signed TLS certificate", metadata: ["file": "\(certificateFile)"])
        return try TLSServerContext.load(certificateFile: certificateFile, keyFile: keyFile)
    }
}

/// What identifies the contents of two files without reading them.
struct FileStamps: Equatable, Sendable {
    struct Stamp: Equatable, Sendable {
        var device: UInt64
        var inode: UInt64
        var size: Int64
        var modified: Int
        var modifiedNanoseconds: Int
    }
    var first: Stamp?
    var second: Stamp?

    init(_ first: String, _ second: String) {
        self.first = Self.stamp(first)
        self.second = Self.stamp(second)
    }

    /// stat(2), following symbolic links (certbot's live/ names are links into archive/).
    static func stamp(_ path: String) -> Stamp? {
        var s = stat()
        guard stat(path, &s) == 0 else { return nil }
        return Stamp(device: UInt64(s.st_dev), inode: UInt64(s.st_ino), size: Int64(s.st_size),
                     modified: s.st_mtim.tv_sec, modifiedNanoseconds: s.st_mtim.tv_nsec)
    }
}
