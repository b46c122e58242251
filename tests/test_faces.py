"""models/faces on real face photos (public domain, fetched from packages by tests/face_photos.py):
detection, embeddings, one-to-one matching, profile building, the identity guard; and the face
model files of the weights package."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

import weights
from models.faces import (
    MATCH_THRESHOLD,
    Box,
    FaceMatch,
    FaceModelFiles,
    FaceModels,
    IdentityPolicy,
    KnownProfile,
    ProfileBuildError,
    ReferenceFaces,
    build_profile,
    count_known_subjects,
    detect_faces,
    face_picture,
    feathered_ellipse,
    guard_face,
    identify_outputs,
    match_faces,
    soften_face,
    to_uint8,
)
from models.pipeline import identity_json
from tests.face_photos import FACE_BOXES, augment, load_photo

FACE_FILES = ["dlib-face-recognition-resnet-v1", "dlib-shape-predictor-5", "dlib-mmod-face-detector"]


@pytest.fixture(scope="session")
def face_models() -> FaceModels:
    directory = weights.default_weights_dir()
    weights.pull_model_files(directory, FACE_FILES)
    paths = [weights.model_file_path(name, directory) for name in FACE_FILES]
    return FaceModels(FaceModelFiles(embedder=paths[0], landmarks=paths[1], detector=paths[2]))


def paste_faces(names: list[str], face_px: int, canvas_size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """``names``' faces, ``face_px`` wide, pasted at off-centre spots of a real background photo."""
    from skimage import data

    canvas = Image.fromarray(data.coffee()).resize(canvas_size)
    spots = [(0.02, 0.03), (0.8, 0.06), (0.45, 0.55), (0.12, 0.7), (0.75, 0.72)]
    for (fx, fy), name in zip(spots, names, strict=False):
        image = Image.fromarray(load_photo(name))
        left, top, side = FACE_BOXES[name]
        factor = face_px / side
        small = image.resize((round(image.width * factor), round(image.height * factor)), Image.Resampling.LANCZOS)
        cx, cy, half = (left + side / 2) * factor, (top + side / 2) * factor, face_px * 1.5
        crop = small.crop((int(cx - half), int(cy - half), int(cx + half), int(cy + half)))
        canvas.paste(crop, (int(fx * (canvas.width - crop.width)), int(fy * (canvas.height - crop.height))))
    return np.asarray(canvas)


def embed_largest(models: FaceModels, image: np.ndarray) -> np.ndarray:
    faces = detect_faces(image, models)
    assert faces, "no face found"
    return models.embed(image, [faces[0].box])[0]


def references_of(models: FaceModels, images: list[np.ndarray]) -> list[ReferenceFaces]:
    result = []
    for image in images:
        faces = detect_faces(image, models)
        result.append(ReferenceFaces(faces=faces, embeddings=models.embed(image, [f.box for f in faces])))
    return result


# --- detection -------------------------------------------------------------------------------------


def test_detect_faces_finds_five_off_centre_40px_faces(face_models: FaceModels) -> None:
    image = paste_faces(["obama", "obama2", "biden", "hopper", "obama3"], 40, (1200, 800))
    faces = detect_faces(image, face_models)
    assert len(faces) == 5
    assert all(30 <= face.box.width <= 60 for face in faces)
    assert min(face.box.left for face in faces) < 80  # the one at the left edge
    assert max(face.box.right for face in faces) > 900  # and the one at the right edge


def test_detect_faces_finds_nothing_in_photos_without_faces(face_models: FaceModels) -> None:
    from skimage import data

    for image in (data.coffee(), data.chelsea(), data.rocket()):
        assert detect_faces(np.ascontiguousarray(image), face_models) == []


def test_detect_faces_rejects_the_hog_false_positive_on_the_astronaut_suit(face_models: FaceModels) -> None:
    faces = detect_faces(load_photo("collins"), face_models)
    assert len(faces) == 1
    assert faces[0].box.left == pytest.approx(179, abs=20)


def test_detect_faces_refuses_float_images(face_models: FaceModels) -> None:
    with pytest.raises(ValueError, match="uint8"):
        detect_faces(np.zeros((64, 64, 3), dtype=np.float32), face_models)


# --- embeddings and matching --------------------------------------------------------------------------


def test_embeddings_of_distinct_photos_of_one_person_match_and_other_people_do_not(face_models: FaceModels) -> None:
    obama = embed_largest(face_models, load_photo("obama"))
    obama3 = embed_largest(face_models, load_photo("obama3"))
    others = [embed_largest(face_models, load_photo(name)) for name in ("biden", "hopper", "collins")]
    assert np.linalg.norm(obama - obama3) < MATCH_THRESHOLD
    assert all(np.linalg.norm(obama - other) > MATCH_THRESHOLD + 0.1 for other in others)


def test_match_faces_assigns_one_to_one_by_distance() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=128).astype(np.float32), rng.normal(size=128).astype(np.float32)
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    profiles = [KnownProfile("prof_a", a), KnownProfile("prof_b", b)]
    # Face 0 is close to both, face 1 only to a: a goes to face 1, b to face 0.
    faces = np.stack([a * 0.5 + b * 0.5, a + 0.01, b * 5]).astype(np.float32)
    distances = np.linalg.norm(faces[:, None] - np.stack([a, b])[None], axis=2)
    threshold = float(distances[0].max()) + 0.01
    matches = match_faces(faces, profiles, threshold)
    assert [(m.face, m.profile_id) for m in matches] == [(0, "prof_b"), (1, "prof_a")]


def test_match_faces_never_matches_above_the_threshold() -> None:
    centroid = np.ones(128, dtype=np.float32)
    faces = np.stack([centroid + 0.1, centroid + 1.0]).astype(np.float32)
    matches = match_faces(faces, [KnownProfile("prof_a", centroid)], threshold=0.55)
    assert [m.face for m in matches] == []  # distance 1.13 and 11.3
    assert match_faces(faces, [KnownProfile("prof_a", centroid)], threshold=1.2)[0].face == 0


def test_count_known_subjects_counts_a_profile_once_per_output() -> None:
    outputs = [
        [FaceMatch(0, "prof_a", 0.3), FaceMatch(1, "prof_b", 0.4)],
        [FaceMatch(0, "prof_a", 0.3)],
        [],
    ]
    assert count_known_subjects(outputs) == {"prof_a": 2, "prof_b": 1}


# --- building profiles -----------------------------------------------------------------------------


def test_build_profile_keeps_the_person_present_across_references_and_leaves_out_others(
    face_models: FaceModels,
) -> None:
    rng = np.random.default_rng(1)
    images = [augment(name, rng, (80, 160)) for name in ["obama", "obama2", "obama3", "obama", "obama2"]]
    images += [augment("biden", rng, (80, 160)), augment("hopper", rng, (80, 160))]
    built = build_profile(references_of(face_models, images))
    assert [ref for ref, _ in built.members] == [0, 1, 2, 3, 4]
    assert built.left_out == {5: "shows someone else", 6: "shows someone else"}
    assert built.embeddings.shape == (5, 128)


def test_build_profile_picks_the_subject_in_group_photos(face_models: FaceModels) -> None:
    # Every reference shows Obama; each also shows one of three other people.
    images = [paste_faces(["obama2", other], 90, (700, 500)) for other in ["biden", "hopper", "collins"]]
    images += [augment("obama", np.random.default_rng(i), (80, 160)) for i in range(2)]
    built = build_profile(references_of(face_models, images))
    obama = embed_largest(face_models, load_photo("obama3"))
    assert np.linalg.norm(built.centroid - obama) < MATCH_THRESHOLD
    assert len(built.members) == 5


def test_build_profile_errors_when_too_few_references_show_a_face(face_models: FaceModels) -> None:
    from skimage import data

    rng = np.random.default_rng(2)
    images = [augment("obama", rng), augment("obama2", rng), data.coffee(), data.chelsea(), data.rocket()]
    with pytest.raises(ProfileBuildError, match=r"Only 2 of 5 .* no face found: 3 \(#3, #4, #5\)"):
        build_profile(references_of(face_models, [np.ascontiguousarray(i) for i in images]))


def test_build_profile_errors_when_no_person_dominates(face_models: FaceModels) -> None:
    rng = np.random.default_rng(3)
    names = ["obama", "obama2", "biden", "biden", "hopper", "collins"]
    with pytest.raises(ProfileBuildError, match="Only 2 of 6 references show the same person"):
        build_profile(references_of(face_models, [augment(name, rng, (80, 160)) for name in names]))


def test_build_profile_errors_when_two_people_are_in_every_reference(face_models: FaceModels) -> None:
    pairs = [("obama", "biden"), ("obama2", "biden"), ("obama3", "biden"), ("obama", "biden"), ("obama2", "biden")]
    images = [paste_faces(list(pair), 80 + 10 * i, (700, 500)) for i, pair in enumerate(pairs)]
    with pytest.raises(ProfileBuildError, match="more than one person about equally often"):
        build_profile(references_of(face_models, images))


def test_build_profile_reports_unusable_references() -> None:
    references = [ReferenceFaces(problem="could not be fetched")] * 5
    with pytest.raises(ProfileBuildError, match=r"could not be fetched: 5 \(#1, #2, #3, #4, #5\)"):
        build_profile(references)


def test_face_picture_is_a_square_crop_around_the_face() -> None:
    image = load_photo("obama")
    left, top, side = FACE_BOXES["obama"]
    picture = face_picture(image, Box(left, top, left + side, top + side))
    assert picture.shape == (256, 256, 3)
    assert picture.dtype == np.uint8


# --- the identity guard ---------------------------------------------------------------------------------


def test_feathered_ellipse_is_one_on_the_face_and_zero_far_away() -> None:
    mask = feathered_ellipse(200, 200, Box(80, 80, 120, 120))
    assert mask[100, 100] == 1.0
    assert mask[5, 5] == 0.0
    assert 0 < mask[100, 125] < 1  # the feathered rim


def test_soften_face_changes_only_the_face_region() -> None:
    source = load_photo("hopper")
    resampled = (
        np.asarray(Image.fromarray(source).resize((1024, 1200), Image.Resampling.BICUBIC), dtype=np.float32) / 255.0
    )
    blurred = np.asarray(Image.fromarray(source).resize((1024, 1200)).filter(ImageFilter.GaussianBlur(6)))
    output = blurred.astype(np.float32) / 255.0
    box = Box(161, 137, 377, 353).scaled(2.0)
    softened = soften_face(output, source, box, 1.0)
    assert np.array_equal(softened[:50], output[:50])  # far from the face: untouched
    centre = (slice(480, 520), slice(500, 560))
    # the face: the input's detail is back
    assert np.abs(softened[centre] - resampled[centre]).mean() < 0.6 * np.abs(output[centre] - resampled[centre]).mean()


def test_soften_face_keeps_the_outputs_tone() -> None:
    source = load_photo("hopper")
    output = np.asarray(Image.fromarray(source).resize((1024, 1200)), dtype=np.float32) / 255.0 * 0.6
    box = Box(161, 137, 377, 353).scaled(2.0)
    softened = soften_face(output, source, box, 1.0)
    centre = (slice(440, 540), slice(480, 580))
    assert abs(float(softened[centre].mean()) - float(output[centre].mean())) < 0.02


@pytest.fixture(scope="module")
def swapped_face(face_models: FaceModels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(source uint8, faithful ×3 output uint8, the same output with Biden's face pasted over Obama's:
    an "enhancement" that invents a different face)."""
    source_u8 = augment("obama2", np.random.default_rng(4), (70, 70))
    height, width = source_u8.shape[:2]
    faithful = np.asarray(Image.fromarray(source_u8).resize((width * 3, height * 3), Image.Resampling.BICUBIC))
    (face,) = detect_faces(source_u8, face_models)
    box = face.box.scaled(3)
    swapped = faithful.copy()
    biden = load_photo("biden")
    left, top, side = FACE_BOXES["biden"]
    x0, y0, x1, y1 = (round(v) for v in (box.left, box.top, box.right, box.bottom))
    patch = Image.fromarray(biden[top : top + side, left : left + side]).resize((x1 - x0, y1 - y0))
    swapped[y0:y1, x0:x1] = np.asarray(patch)
    return source_u8, faithful, swapped


def test_guard_softens_a_face_the_enhancement_moved_and_keeps_one_it_did_not(
    face_models: FaceModels, swapped_face: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    source, faithful, swapped = (image.astype(np.float32) / 255.0 for image in swapped_face)
    result = identify_outputs(source, [faithful, swapped], face_models, [], IdentityPolicy(max_drift=0.2))
    assert result.report is not None
    kept, softened = (output.guard for output in result.report.faces[0].outputs)
    assert kept is not None and kept.action == "kept" and kept.drift <= 0.2
    assert softened is not None and softened.action == "softened"
    assert softened.drift > 0.5
    assert softened.drift_after < softened.drift / 2
    assert result.images[0] is faithful
    assert not np.array_equal(result.images[1], swapped)
    assert result.images[1].dtype == np.float32


def test_guard_on_uint8_outputs_returns_uint8_equal_to_the_float_guard_rounded(
    face_models: FaceModels, swapped_face: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    source_u8, faithful_u8, swapped_u8 = swapped_face
    source = source_u8.astype(np.float32) / 255.0
    policy = IdentityPolicy(max_drift=0.2)
    as_float = identify_outputs(
        source, [faithful_u8.astype(np.float32) / 255.0, swapped_u8.astype(np.float32) / 255.0], face_models, [], policy
    )
    result = identify_outputs(source, [faithful_u8, swapped_u8], face_models, [], policy)
    assert result.report is not None and as_float.report is not None
    assert [o.guard.action for o in result.report.faces[0].outputs if o.guard] == ["kept", "softened"]
    assert identity_json(result.report)["faces"] == identity_json(as_float.report)["faces"]
    assert result.images[0] is faithful_u8  # kept: the given array, never converted
    assert result.images[1].dtype == np.uint8
    assert not np.array_equal(result.images[1], swapped_u8)
    np.testing.assert_array_equal(result.images[1], to_uint8(as_float.images[1]))


def test_guard_trying_blends_on_the_face_region_equals_blending_whole_images(
    face_models: FaceModels, swapped_face: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    """The guard tries each blend weight on the face's region only; the result must be what blending
    the whole image and rounding it gives (the definition), for float and uint8 outputs alike."""
    source_u8, _faithful, swapped_u8 = swapped_face
    box = detect_faces(swapped_u8, face_models)[0].box
    reference = face_models.embed(source_u8, [box])[0]
    steps = (0.25, 0.5, 0.75, 1.0)
    swapped = swapped_u8.astype(np.float32) / 255.0
    for output, output_u8 in [(swapped, to_uint8(swapped)), (swapped_u8, swapped_u8)]:
        result, result_u8, embedding, decision = guard_face(
            output, output_u8, source_u8, box, reference, face_models, max_drift=0.2, blend_steps=steps
        )
        assert decision.blend > 0  # the swapped face is softened
        # The definition: every weight in turn on whole images, up to the first that is close enough.
        for weight in steps:
            expected = soften_face(swapped, source_u8, box, weight)
            expected_u8 = to_uint8(expected)
            after = float(np.linalg.norm(face_models.embed(expected_u8, [box])[0] - reference))
            if after <= 0.2 or weight == steps[-1]:
                break
        assert decision.blend == weight and decision.drift_after == pytest.approx(after, abs=1e-6)
        np.testing.assert_array_equal(result_u8, expected_u8)
        np.testing.assert_allclose(result, expected, atol=1e-7)
        np.testing.assert_allclose(embedding, face_models.embed(expected_u8, [box])[0], atol=1e-6)


def test_identify_outputs_counts_candidates_and_never_reports_others(face_models: FaceModels) -> None:
    obama = KnownProfile("prof_obama", embed_largest(face_models, load_photo("obama")))
    hopper = KnownProfile("prof_hopper", embed_largest(face_models, load_photo("hopper")))
    image = paste_faces(["obama3", "biden"], 90, (640, 480)).astype(np.float32) / 255.0
    output = np.asarray(Image.fromarray((image * 255).astype(np.uint8)).resize((1280, 960), Image.Resampling.BICUBIC))
    output = output.astype(np.float32) / 255.0
    result = identify_outputs(image, [output, output], face_models, [obama, hopper], IdentityPolicy())
    assert result.counts == {"prof_obama": 2}
    assert result.report is not None and len(result.report.faces) == 2
    named = [o.matched.profile_id for face in result.report.faces for o in face.outputs if o.matched]
    assert named == ["prof_obama", "prof_obama"]


def test_identify_outputs_without_faces_counts_nothing(face_models: FaceModels) -> None:
    from skimage import data

    image = data.coffee().astype(np.float32) / 255.0
    result = identify_outputs(image, [image], face_models, [], IdentityPolicy())
    assert result.counts == {} and result.report is not None and result.report.faces == []
    assert result.report.policy is None and set(result.report.timings) == {"detect_s"}
    assert result.images[0] is image


def test_identify_outputs_without_faces_returns_uint8_outputs_untouched(face_models: FaceModels) -> None:
    from skimage import data

    output = np.ascontiguousarray(data.coffee())
    snapshot = output.copy()
    result = identify_outputs(output.astype(np.float32) / 255.0, [output], face_models, [], IdentityPolicy())
    assert result.report is not None and result.report.faces == []
    assert result.images[0] is output
    np.testing.assert_array_equal(output, snapshot)


def test_identify_outputs_counts_on_uint8_outputs_and_returns_them_as_given(face_models: FaceModels) -> None:
    obama = KnownProfile("prof_obama", embed_largest(face_models, load_photo("obama")))
    image_u8 = paste_faces(["obama3", "biden"], 90, (640, 480))
    output = np.asarray(Image.fromarray(image_u8).resize((1280, 960), Image.Resampling.BICUBIC))
    result = identify_outputs(image_u8.astype(np.float32) / 255.0, [output], face_models, [obama], IdentityPolicy())
    assert result.counts == {"prof_obama": 1}
    assert result.report is not None
    assert [o.guard.action for face in result.report.faces for o in face.outputs if o.guard] == ["kept", "kept"]
    assert result.images[0] is output


@pytest.mark.parametrize(
    ("source_dtype", "output_dtype", "fragment"),
    [
        (np.float32, np.uint16, "outputs must be uint8 or floating point"),
        (np.float32, np.int32, "outputs must be uint8 or floating point"),
        (np.uint8, np.uint8, "source must be floating point"),
    ],
)
def test_identify_outputs_refuses_other_dtypes(
    face_models: FaceModels, source_dtype: type, output_dtype: type, fragment: str
) -> None:
    source: np.ndarray = np.zeros((32, 32, 3), source_dtype)
    output: np.ndarray = np.zeros((64, 64, 3), output_dtype)
    with pytest.raises(ValueError, match=fragment):
        identify_outputs(source, [output], face_models, [], IdentityPolicy())


# --- model files ----------------------------------------------------------------------------------


def test_face_model_files_are_in_the_manifest_with_cc0_and_never_the_68_point_predictor() -> None:
    specs = weights.load_file_manifest()
    assert {spec.name for spec in specs} == set(FACE_FILES)
    assert all(
        spec.licence == "CC0-1.0" and spec.source.requirement == "face_recognition_models==0.3.0" for spec in specs
    )
    assert not any("68" in spec.file or "68" in spec.source.member for spec in specs)


def test_model_file_path_refuses_a_corrupted_file(tmp_path: Path, face_models: FaceModels) -> None:
    name = "dlib-mmod-face-detector"
    source = weights.model_file_path(name, weights.default_weights_dir())
    shutil.copy(source, tmp_path / source.name)
    assert weights.model_file_path(name, tmp_path) == tmp_path / source.name
    with open(tmp_path / source.name, "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00\x01")
    with pytest.raises(weights.WeightsChecksumError, match="refusing to use it"):
        weights.model_file_path(name, tmp_path)
    with pytest.raises(weights.WeightsMissingError, match="python -m weights pull"):
        weights.model_file_path("dlib-shape-predictor-5", tmp_path)


def test_read_archive_member_refuses_a_member_with_the_wrong_sha256() -> None:
    import dataclasses

    spec = weights.get_file_spec("dlib-mmod-face-detector")
    archive = weights.download_source_archive(spec.source, weights.default_cache_dir(weights.default_weights_dir()))
    assert (
        weights.read_archive_member(spec, archive)[:4]
        == Path(weights.model_file_path(spec.name, weights.default_weights_dir())).read_bytes()[:4]
    )
    with pytest.raises(weights.WeightsChecksumError, match="the manifest expects"):
        weights.read_archive_member(dataclasses.replace(spec, sha256="0" * 64), archive)


def test_pull_model_files_writes_missing_files_from_the_cached_archive(tmp_path: Path) -> None:
    cache = weights.default_cache_dir(weights.default_weights_dir())
    paths = weights.pull_model_files(tmp_path, ["dlib-mmod-face-detector"], cache_dir=cache)
    assert paths == [tmp_path / "mmod_human_face_detector.dat"]
    assert weights.verify_model_files(tmp_path, ["dlib-mmod-face-detector"]) == paths
