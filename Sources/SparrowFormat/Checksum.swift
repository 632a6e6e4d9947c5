import CChecksum

/// CRC-32C over a byte range (hardware instruction where the CPU has one).
@inlinable
package func crc32c(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
    guard let base = bytes.baseAddress, bytes.count > 0 else { return seed }
    return spk_crc32c(seed, base, bytes.count)
}

/// CRC-32C of an array of bytes.
package func crc32c(_ bytes: [UInt8]) -> UInt32 {
    bytes.withUnsafeBytes { crc32c($0) }
}
