"""Conversation memory: persona, bounded history, heard-only replies, camera notes, attached frames."""

from __future__ import annotations

from digihuman.llm.memory import CAMERA_TAG, ConversationMemory, observation_note, proactive_prompt


def test_messages_hold_persona_history_and_frames_on_the_last_user_message() -> None:
    memory = ConversationMemory("You are Ada.")
    memory.add_user("Hi!")
    memory.add_assistant("Hello there.")
    memory.add_user("What do you see?")
    messages = memory.messages(images=[b"jpeg1", b"jpeg2"])
    assert [m.role for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[0].content.startswith("You are Ada.") and CAMERA_TAG in messages[0].content
    assert messages[-1].content == "What do you see?"
    assert messages[-1].images == (b"jpeg1", b"jpeg2")
    assert all(not m.images for m in messages[:-1])


def test_a_proactive_prompt_is_sent_but_not_stored() -> None:
    memory = ConversationMemory("You are Ada.")
    memory.add_user("Hi!")
    memory.add_assistant("Hello.")
    prompt = proactive_prompt("someone_arrived", "<silent>")
    messages = memory.messages(prompt=prompt, images=[b"a", b"b", b"c"])
    assert messages[-1].role == "user" and messages[-1].content == prompt
    assert "<silent>" in prompt and prompt.startswith(CAMERA_TAG)
    assert messages[-1].images == (b"a", b"b", b"c")
    assert len(memory) == 2


def test_observations_are_camera_notes_and_replies_keep_only_heard_text() -> None:
    memory = ConversationMemory("p")
    memory.add_observation("someone_arrived")
    memory.add_assistant("Oh, hello")  # the rest of the reply was cut
    memory.add_assistant("   ")  # nothing heard: nothing stored
    assert [(e.role, e.content) for e in memory.entries] == [
        ("user", observation_note("someone_arrived")),
        ("assistant", "Oh, hello"),
    ]
    assert observation_note("someone_arrived") == "[camera] Someone arrived."


def test_consecutive_same_role_entries_are_merged_so_roles_alternate() -> None:
    memory = ConversationMemory("p")
    memory.add_user("Tell me a story")  # cut before anything was heard
    memory.add_user("Actually, what time is it?")
    messages = memory.messages(prompt="[camera] Something changed.")
    assert [m.role for m in messages] == ["system", "user"]
    assert messages[1].content == "Tell me a story\nActually, what time is it?\n[camera] Something changed."


def test_images_after_a_reply_come_as_their_own_camera_message() -> None:
    memory = ConversationMemory("p")
    memory.add_user("Hi")
    memory.add_assistant("Hello")
    messages = memory.messages(images=[b"x"])
    assert (
        messages[-1].role == "user" and messages[-1].content == CAMERA_TAG and messages[-1].images == (b"x",)
    )


def test_history_is_bounded_by_exchanges_and_characters() -> None:
    memory = ConversationMemory("p", max_exchanges=3, max_chars=200)
    for i in range(50):
        memory.add_user(f"question {i}")
        memory.add_assistant(f"answer {i}")
        assert len(memory) <= 6 and memory.chars() <= 200
        assert memory.entries[0].role == "user"  # never opens with a reply
    assert memory.entries[-1].content == "answer 49"
    assert memory.entries[0].content == "question 47"
    memory.add_user("x" * 150)
    memory.add_assistant("y" * 150)
    assert memory.chars() <= 200 and memory.entries[-1].content == "y" * 150


def test_one_huge_entry_is_shortened_not_allowed_to_evict_itself() -> None:
    memory = ConversationMemory("p", max_chars=100)
    memory.add_assistant("z" * 5000)
    assert len(memory) == 1 and len(memory.entries[0].content) == 100
