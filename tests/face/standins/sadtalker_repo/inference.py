"""Stand-in for SadTalker's inference.py (OpenTalker/SadTalker): the same flags and defaults, the same outputs
and the same failure modes, with a drawn mouth instead of the neural renderer.

- configs come from src/config next to argv[0]; checkpoints from --checkpoint_dir (missing -> traceback);
- output: <result_dir>/<YYYY_MM_DD_HH.MM.SS>.mp4 at 25 fps with floor(seconds * 25) frames, muxed through a
  uuid-named temp file in the cwd (as its save_video_with_watermark does);
- no face in the source image: prints "Can't get the coeffs of the input" and exits 0 without a video.
"""

import os
import shutil
import sys
import uuid
from argparse import ArgumentParser
from time import strftime

import cv2

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
import standin_media as media


def main(args):
    save_dir = os.path.join(args.result_dir, strftime("%Y_%m_%d_%H.%M.%S"))
    os.makedirs(save_dir, exist_ok=True)
    current_root_path = os.path.split(sys.argv[0])[0]
    config_dir = os.path.join(current_root_path, "src/config")
    facerender_yaml = "facerender_still.yaml" if "full" in args.preprocess else "facerender.yaml"
    for name in ("auido2pose.yaml", "auido2exp.yaml", facerender_yaml):
        with open(os.path.join(config_dir, name)):  # FileNotFoundError when not run by its repo path
            pass
    checkpoint = os.path.join(args.checkpoint_dir, f"SadTalker_V0.0.2_{args.size}.safetensors")
    with open(checkpoint, "rb"):  # the real one fails in safetensors/torch.load here
        pass
    media.misbehave_if_asked()

    first_frame_dir = os.path.join(save_dir, "first_frame_dir")
    os.makedirs(first_frame_dir, exist_ok=True)
    print("3DMM Extraction for source image")
    source = cv2.imread(args.source_image)
    face = media.find_face(source) if source is not None else None
    if face is None:
        print("Can't get the coeffs of the input")
        return

    pcm, rate = media.read_audio(args.driven_audio)
    count = int(len(pcm) / rate * 25)  # its parse_audio_length rounds down
    if "full" in args.preprocess:
        base, face_box = source, face
    else:  # crop/resize: a face crop at the render size
        x, y, w, h = face
        pad = w // 2
        crop = source[max(0, y - pad) : y + h + pad, max(0, x - pad) : x + w + pad]
        base = cv2.resize(crop, (args.size, args.size))
        scale = args.size / crop.shape[1]
        face_box = (
            int((x - max(0, x - pad)) * scale),
            int((y - max(0, y - pad)) * scale),
            int(w * scale),
            int(h * scale),
        )
    levels = media.loudness_per_frame(pcm, rate, 25, count)
    frames = [media.draw_mouth(base, face_box, level * args.expression_scale) for level in levels]

    silent_video = os.path.join(save_dir, "temp.mp4")
    media.write_mp4(silent_video, frames, 25, pcm, rate)
    temp_file = str(uuid.uuid4()) + ".mp4"  # relative: lands in the cwd
    shutil.copyfile(silent_video, temp_file)
    result = os.path.join(save_dir, "result.mp4")
    shutil.move(temp_file, result)
    shutil.move(result, save_dir + ".mp4")
    print("The generated video is named:", save_dir + ".mp4")
    if not args.verbose:
        shutil.rmtree(save_dir)


if __name__ == "__main__":
    parser = ArgumentParser()
    parser.add_argument("--driven_audio", default="./examples/driven_audio/bus_chinese.wav")
    parser.add_argument("--source_image", default="./examples/source_image/full_body_1.png")
    parser.add_argument("--ref_eyeblink", default=None)
    parser.add_argument("--ref_pose", default=None)
    parser.add_argument("--checkpoint_dir", default="./checkpoints")
    parser.add_argument("--result_dir", default="./results")
    parser.add_argument("--pose_style", type=int, default=0)
    parser.add_argument("--batch_size", type=int, default=2)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--expression_scale", type=float, default=1.0)
    parser.add_argument("--input_yaw", nargs="+", type=int, default=None)
    parser.add_argument("--input_pitch", nargs="+", type=int, default=None)
    parser.add_argument("--input_roll", nargs="+", type=int, default=None)
    parser.add_argument("--enhancer", type=str, default=None)
    parser.add_argument("--background_enhancer", type=str, default=None)
    parser.add_argument("--cpu", dest="cpu", action="store_true")
    parser.add_argument("--face3dvis", action="store_true")
    parser.add_argument("--still", action="store_true")
    parser.add_argument(
        "--preprocess", default="crop", choices=["crop", "extcrop", "resize", "full", "extfull"]
    )
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--old_version", action="store_true")
    args = parser.parse_args()
    args.device = "cpu"
    main(args)
