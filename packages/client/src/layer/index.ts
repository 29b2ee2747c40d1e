export { assembleLayer, LayerIntegrityError } from "./assemble.js";
export { Crc64, crc64Update } from "./crc64.js";
export { decompressor, findZstd } from "./decompress.js";
export { TarFormatError } from "./tar.js";
export { LayerTooLargeError, type UnpackOptions, type UnpackResult, UnsafeLayerError, unpackLayer } from "./unpack.js";
