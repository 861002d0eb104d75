// UI text in English and Chinese, chosen from navigator.language.
const TEXT = {
  en: {
    unmute: "Click to turn on sound", placeholder: "Say something…", send: "Send",
    mic_on: "Microphone", mic_off: "Stop", hold_to_talk: "Hold to talk", hands_free: "hands-free",
    push_to_talk: "push-to-talk", camera_on: "Camera", camera_off: "Stop camera", interrupt: "Stop talking",
    character: "Character", new_character: "New character from a photo", name: "Name", portrait: "Photo",
    voice: "Voice sample (optional)", language: "Language", create: "Create", creating: "Creating…",
    created: "Created", latency: "Latency", conversation: "Conversation",
    idle: "idle", listening: "listening", thinking: "thinking", speaking: "speaking",
    connecting: "connecting…", reconnecting: "reconnecting…", busy: "The server is full", closed: "The session ended",
    new_session: "Start again", you: "You",
    llm_first_token_s: "LLM first token", first_sentence_s: "first sentence", tts_first_audio_s: "first speech",
    first_frame_s: "first face frame", first_audio_played_s: "first audio played", total_s: "whole turn",
    typed_to_audio_ms: "typed → audio (browser)", av_sync_ms: "A/V sync, mean |Δ|", av_sync_max_ms: "A/V sync, max |Δ|",
    frames_shown: "frames shown", frames_dropped: "frames skipped", no_mic: "No microphone: ", no_camera: "No camera: ",
    taken_over: "This conversation is open in another tab.",
  },
  zh: {
    unmute: "点击开启声音", placeholder: "说点什么……", send: "发送",
    mic_on: "麦克风", mic_off: "停止", hold_to_talk: "按住说话", hands_free: "免提",
    push_to_talk: "按键说话", camera_on: "摄像头", camera_off: "关闭摄像头", interrupt: "打断",
    character: "角色", new_character: "用照片新建角色", name: "名字", portrait: "照片",
    voice: "声音样本（可选）", language: "语言", create: "创建", creating: "正在创建……",
    created: "已创建", latency: "延迟", conversation: "对话",
    idle: "空闲", listening: "正在听", thinking: "正在思考", speaking: "正在说话",
    connecting: "正在连接……", reconnecting: "正在重新连接……", busy: "服务器已满", closed: "会话已结束",
    new_session: "重新开始", you: "你",
    llm_first_token_s: "大模型首个词", first_sentence_s: "第一句", tts_first_audio_s: "首段语音",
    first_frame_s: "首帧画面", first_audio_played_s: "开始播放", total_s: "整轮",
    typed_to_audio_ms: "输入 → 声音（浏览器）", av_sync_ms: "音画同步 平均|Δ|", av_sync_max_ms: "音画同步 最大|Δ|",
    frames_shown: "显示帧数", frames_dropped: "跳过帧数", no_mic: "没有麦克风：", no_camera: "没有摄像头：",
    taken_over: "这个对话已在另一个标签页中打开。",
  },
};

export const lang = (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en";

export function t(key) {
  return TEXT[lang][key] ?? TEXT.en[key] ?? key;
}

export function translatePage() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
}
