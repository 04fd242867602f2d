//! The voice gate: sends only while someone speaks (voice activity) or holds push-to-talk, with
//! a hangover so word endings are not clipped and short fades so opening and closing never click.

use crate::frame::{FRAME_SAMPLES, Frame};

/// How the gate decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GateMode {
    /// Open while voice activity is detected.
    VoiceActivity,
    /// Open while the push-to-talk key is held (plus the release hangover).
    PushToTalk,
    /// Always open.
    Open,
}

/// Voice probability at or above which the gate opens.
const OPEN_PROBABILITY: f32 = 0.6;
/// Voice probability below which an open gate starts its hangover.
const HOLD_PROBABILITY: f32 = 0.25;
/// Frames the gate stays open after the last voice (300 ms).
const HANGOVER_FRAMES: u32 = 30;
/// Frames to stay open after push-to-talk is released (100 ms).
const PTT_RELEASE_FRAMES: u32 = 10;

/// Decides per frame whether to send, and fades the frame accordingly.
#[derive(Debug, Clone)]
pub struct VoiceGate {
    mode: GateMode,
    push_to_talk_held: bool,
    open: bool,
    hangover: u32,
}

impl Default for VoiceGate {
    fn default() -> Self {
        Self::new(GateMode::VoiceActivity)
    }
}

impl VoiceGate {
    /// A closed gate in `mode`.
    pub fn new(mode: GateMode) -> Self {
        Self {
            mode,
            push_to_talk_held: false,
            open: false,
            hangover: 0,
        }
    }

    /// Changes the mode from the next frame.
    pub fn set_mode(&mut self, mode: GateMode) {
        self.mode = mode;
    }

    /// The current mode.
    pub fn mode(&self) -> GateMode {
        self.mode
    }

    /// Presses or releases push-to-talk.
    pub fn set_push_to_talk(&mut self, held: bool) {
        self.push_to_talk_held = held;
    }

    /// Whether the last frame was sent.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Decides for this frame from its voice probability, fades it in or out on a change, and
    /// silences it while closed. Returns whether the frame is to be sent.
    pub fn process(&mut self, frame: &mut Frame, voice_probability: f32) -> bool {
        let want_open = match self.mode {
            GateMode::Open => true,
            GateMode::PushToTalk => {
                if self.push_to_talk_held {
                    self.hangover = PTT_RELEASE_FRAMES;
                    true
                } else {
                    self.countdown()
                }
            }
            GateMode::VoiceActivity => {
                let threshold = if self.open {
                    HOLD_PROBABILITY
                } else {
                    OPEN_PROBABILITY
                };
                if voice_probability >= threshold {
                    self.hangover = HANGOVER_FRAMES;
                    true
                } else {
                    self.countdown()
                }
            }
        };
        let last = FRAME_SAMPLES as f32;
        match (self.open, want_open) {
            (true, true) => {}
            (false, false) => frame.fill(0.0),
            (false, true) => frame
                .iter_mut()
                .enumerate()
                .for_each(|(i, s)| *s *= i as f32 / last),
            (true, false) => frame
                .iter_mut()
                .enumerate()
                .for_each(|(i, s)| *s *= 1.0 - i as f32 / last),
        }
        // A closing frame still carries its fade-out, so it is sent.
        let send = self.open || want_open;
        self.open = want_open;
        send
    }

    fn countdown(&mut self) -> bool {
        if self.hangover > 0 {
            self.hangover -= 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_on_voice_and_holds_for_the_hangover() {
        let mut gate = VoiceGate::default();
        let mut frame = [0.5f32; FRAME_SAMPLES];
        assert!(!gate.process(&mut frame, 0.1));
        assert_eq!(frame[FRAME_SAMPLES - 1], 0.0);
        let mut frame = [0.5f32; FRAME_SAMPLES];
        assert!(gate.process(&mut frame, 0.9));
        assert_eq!(frame[0], 0.0, "fades in");
        assert!(frame[FRAME_SAMPLES - 1] > 0.49);
        // Mid-word dips above the hold threshold keep it open without using the hangover.
        assert!(gate.process(&mut [0.5; FRAME_SAMPLES], 0.3));
        let sent = (0..100)
            .take_while(|_| gate.process(&mut [0.5; FRAME_SAMPLES], 0.0))
            .count();
        assert_eq!(
            sent as u32,
            HANGOVER_FRAMES + 1,
            "hangover frames, then one fading frame"
        );
        assert!(!gate.is_open());
    }

    #[test]
    fn push_to_talk_ignores_voice() {
        let mut gate = VoiceGate::new(GateMode::PushToTalk);
        assert!(!gate.process(&mut [0.5; FRAME_SAMPLES], 1.0));
        gate.set_push_to_talk(true);
        assert!(gate.process(&mut [0.5; FRAME_SAMPLES], 0.0));
        gate.set_push_to_talk(false);
        let sent = (0..100)
            .take_while(|_| gate.process(&mut [0.5; FRAME_SAMPLES], 1.0))
            .count();
        assert_eq!(sent as u32, PTT_RELEASE_FRAMES + 1);
    }
}
