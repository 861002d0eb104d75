"""Stand-in for Wav2Lip's inference.py (Rudrabha/Wav2Lip): the same flags and defaults, the same fixed
relative paths and the same failure modes, with a drawn mouth instead of the model.

- an image face is recognised by `face.split('.')[1]` (so a dot elsewhere in the path breaks it, as in
  the real one); frames: one per mel chunk (80 mel frames per second, 16-frame windows);
- writes temp/result.avi (cv2, DIVX) in the cwd, then "ffmpeg" muxes it with the audio into --outfile
  through an unquoted shell command (paths with spaces break); when temp/ is missing the writer fails
  silently and the mux fails, and it still exits 0 (as the real one does);
- no face: writes temp/faulty_frame.jpg and raises ValueError('Face not detected! ...').
"""

import argparse
import os
import shlex
import sys

import cv2

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
import standin_media as media

parser = argparse.ArgumentParser(
    description="Inference code to lip-sync videos in the wild using Wav2Lip models"
)
parser.add_argument("--checkpoint_path", type=str, required=True)
parser.add_argument("--face", type=str, required=True)
parser.add_argument("--audio", type=str, required=True)
parser.add_argument("--outfile", type=str, default="results/result_voice.mp4")
parser.add_argument("--static", type=bool, default=False)
parser.add_argument("--fps", type=float, default=25.0, required=False)
parser.add_argument("--pads", nargs="+", type=int, default=[0, 10, 0, 0])
parser.add_argument("--face_det_batch_size", type=int, default=16)
parser.add_argument("--wav2lip_batch_size", type=int, default=128)
parser.add_argument("--resize_factor", default=1, type=int)
parser.add_argument("--crop", nargs="+", type=int, default=[0, -1, 0, -1])
parser.add_argument("--box", nargs="+", type=int, default=[-1, -1, -1, -1])
parser.add_argument("--rotate", default=False, action="store_true")
parser.add_argument("--nosmooth", default=False, action="store_true")
args = parser.parse_args()
args.img_size = 96

if os.path.isfile(args.face) and args.face.split(".")[1] in ["jpg", "png", "jpeg"]:
    args.static = True

mel_step_size = 16


def main():
    if not os.path.isfile(args.face):
        raise ValueError("--face argument must be a valid path to video/image file")
    elif args.face.split(".")[1] in ["jpg", "png", "jpeg"]:
        full_frames = [cv2.imread(args.face)]
        fps = args.fps
    else:
        video_stream = cv2.VideoCapture(args.face)
        fps = video_stream.get(cv2.CAP_PROP_FPS)
        full_frames = []
        while True:
            still_reading, frame = video_stream.read()
            if not still_reading:
                video_stream.release()
                break
            full_frames.append(frame)
    print("Number of frames available for inference: " + str(len(full_frames)))

    if not args.audio.endswith(".wav"):
        raise FileNotFoundError("temp/temp.wav")  # its ffmpeg conversion step is not part of the stand-in
    pcm, rate = media.read_audio(args.audio)
    mel_length = 1 + int(len(pcm) * 16000 / rate) // 200  # 16 kHz, hop 200, centred frames
    mel_chunks = 0
    mel_idx_multiplier = 80.0 / fps
    i = 0
    while True:
        start_idx = int(i * mel_idx_multiplier)
        mel_chunks += 1
        if start_idx + mel_step_size > mel_length:
            break
        i += 1
    print(f"Length of mel chunks: {mel_chunks}")

    with open(args.checkpoint_path, "rb"):  # torch.load raises FileNotFoundError here
        pass
    media.misbehave_if_asked()
    image = full_frames[0]
    if args.resize_factor > 1:
        image = cv2.resize(
            image, (image.shape[1] // args.resize_factor, image.shape[0] // args.resize_factor)
        )
    face = media.find_face(image)
    if face is None:
        cv2.imwrite("temp/faulty_frame.jpg", image)
        raise ValueError("Face not detected! Ensure the video contains a face in all the frames.")

    levels = media.loudness_per_frame(pcm, rate, fps, mel_chunks)
    frame_h, frame_w = image.shape[:-1]
    out = cv2.VideoWriter("temp/result.avi", cv2.VideoWriter_fourcc(*"DIVX"), fps, (frame_w, frame_h))
    for level in levels:
        out.write(media.draw_mouth(image, face, float(level)))
    out.release()

    # Run through a shell, unquoted, its exit status ignored: the stand-in parses it the same way.
    command = "ffmpeg -y -i {} -i {} -strict -2 -q:v 1 {}".format(args.audio, "temp/result.avi", args.outfile)
    words = shlex.split(command)
    audio_path, video_path, outfile = words[3], words[5], words[-1]
    if not os.path.isfile(video_path) or not os.path.isfile(audio_path):
        missing = video_path if not os.path.isfile(video_path) else audio_path
        print(f"{missing}: No such file or directory", file=sys.stderr)
        return
    capture = cv2.VideoCapture(video_path)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    media.write_mp4(outfile, frames, fps, *media.read_audio(audio_path))


if __name__ == "__main__":
    main()
