"""Image input and output: file bytes → float32 sRGB pixels → PNG/JPEG bytes. No network here: the
server turns the API's ``image`` string into bytes (``server.image_source``, ``server.outbound``).

Public face (everything else lives in private modules):

* :func:`decode_image` → :class:`DecodedImage` — sniff, decode, orient, colour-manage, cap the size.
* :func:`encode_image`, :func:`flatten_alpha` — PNG/JPEG output with the sRGB ICC profile embedded.
* :func:`sniff_format` — the format named by the leading bytes (the decoder's first step).

Decisions (exercised by ``tests/test_imageio_*.py``):

Decoding
  * The format is sniffed from the bytes and opened with that one Pillow plugin. Decoded: JPEG (incl.
    MPO), PNG (APNG: first frame), WebP (first frame), HEIC/HEIF (pillow-heif), AVIF (Pillow's own
    plugin), TIFF (first page), BMP, GIF (first frame). Recognised but refused with
    :class:`~models.errors.UnsupportedFormatError`: PSD, ICO/CUR, JPEG 2000, JPEG XL, PDF, EPS, SVG, QOI,
    DDS, OpenEXR, Radiance HDR, PNM, DICOM, camera raw CR3/RAF, video ISO-media files. HTML, JSON, XML
    and unknown bytes are :class:`~models.errors.InvalidImageError`.
  * pillow-heif's opener is registered on first HEIF decode, once per process (thread-safe flag): the
    package's only global side effect, and not at import time.
  * Bombs: ``width × height > max_pixels`` (from the header) is refused before any pixel is decoded;
    Pillow's own ``DecompressionBombError`` is mapped to ``InvalidImageError`` too. (Pillow may still
    *warn* for images between its 89 MP threshold and ``max_pixels``; a warnings filter is
    process-global, so it is not changed here.)
  * Truncated or corrupt pixel data is an ``InvalidImageError`` (Pillow's ``LOAD_TRUNCATED_IMAGES`` is
    never turned on: a half-grey photo is not a valid input).
  * EXIF orientation 1..8 is applied (HEIF: pillow-heif already applies the container's rotation and
    resets the tag to 1). ``exif`` is the source block without Orientation and without the GPS IFD; TIFF
    sources give ``None`` (their tags are the file structure). A malformed EXIF block is dropped.
  * Colour: an embedded ICC profile (RGB, gray or CMYK) is converted to sRGB with ``PIL.ImageCms``,
    perceptual intent; profiles that call themselves sRGB are skipped. A corrupt or mismatched profile is
    ignored (pixels taken as sRGB). CMYK without a profile uses Pillow's plain conversion (Adobe-inverted
    CMYK JPEGs are un-inverted by Pillow). LAB TIFFs go through LittleCMS's LAB profile.
  * Alpha: ``alpha`` is ``None`` exactly when the source has no alpha channel and no transparency key;
    an all-opaque alpha channel is kept (callers can tell "opaque" from "no alpha"). RGBA, LA, PA,
    palette with tRNS and colour-key tRNS are kept as straight alpha.
  * Grayscale (1, L, I;16, I, F) becomes three equal channels. ``I`` is read as 16-bit data, ``F`` as
    [0, 1]; both clipped.
  * 16-bit: Pillow keeps 16-bit gray, but reduces 16-bit RGB/RGBA/gray+alpha PNG and TIFF to 8 bits; for
    those the pixels are decoded with ``imagecodecs`` (when installed) and their ICC conversion runs in
    floating point through imagecodecs' LittleCMS. ``bit_depth`` is 16 only when that precision reached
    the output (10/12-bit HEIF and AVIF are decoded at 8 bits by their plugins).
  * Known limit: HEIF/AVIF colour described only by an ``nclx`` box (no ICC profile) is taken as sRGB.
  * Size cap: the long side is brought to ``max_side`` with LANCZOS (alpha premultiplied while
    resampling); ``original_size`` is the upright size before the cap. JPEGs whose long side is at least
    twice ``max_side`` are first reduced by libjpeg's DCT scaling (``draft``) to no less than twice the
    final size, so LANCZOS still makes the last step. Measured on a 20000×4000 JPEG of real photos
    (2 cores): 2.71 s → 1.18 s and 443 → 208 MB peak RSS, 52 dB PSNR against full decode + LANCZOS
    (gradient energy −3 %). Drafting all the way down to the final size was faster still (0.64 s) but
    only 41–46 dB and 11 % softer, so it is not used.

Encoding
  * 8-bit output. uint8 pixels (the pipeline's outputs, quantised on the device) are written as they
    are; floating-point pixels are clipped to [0, 1] and rounded to nearest, so float ``x`` and uint8
    ``round(x·255)`` give identical bytes. :func:`flatten_alpha` takes either and returns float32 (not
    quantised: the encoder rounds once). The sRGB ICC profile (LittleCMS's built-in,
    ``ImageCms.createProfile("sRGB")``) is embedded in every file. The given EXIF is written without
    Orientation (pixels are upright) and with PixelX/YDimension set to the output size when present;
    GPS is kept if the caller passes it (the decoder has already removed it).
  * JPEG: 4:4:4 chroma at quality ≥ 90 (4:2:0 below), no optimise pass. PNG: compression level 1 by
    default. Measured on a 2048×1365 mosaic of real photos (Pillow 13, one core): level 1 219 ms /
    3.74 MB, level 6 445 ms / 3.36 MB, level 9 1080 ms; JPEG q95 24 ms / 1.15 MB. At 4096×2730: PNG
    level 1 680 ms, level 6 1568 ms, JPEG q95 129 ms. JPEG cannot carry alpha: ``ValueError``; the
    caller flattens (:func:`flatten_alpha`) or chooses PNG.
"""

from models.imageio._decode import DecodedImage, decode_image, high_bit_depth_available
from models.imageio._encode import encode_image, flatten_alpha
from models.imageio._sniff import sniff_format

__all__ = [
    "DecodedImage",
    "decode_image",
    "encode_image",
    "flatten_alpha",
    "high_bit_depth_available",
    "sniff_format",
]
