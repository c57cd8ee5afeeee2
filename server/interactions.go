package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/canarybot/canarybot/bot"
)

// interaction serves POST /slack/interactions: the war-room messages'
// buttons and the red-team checklist. It acknowledges as soon as the
// request is verified and parsed; Slack ignores the body of a block_actions
// answer, so every result, a refusal included, goes to response_url.
func (s *Server) interaction(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { s.ack.Observe(time.Since(start).Seconds()) }()
	body, ok := s.verified(w, r, func() { s.actions.WithLabelValues("unknown", "unverified").Inc() })
	if !ok {
		return
	}
	cb, err := parseInteraction(body)
	if err != nil {
		s.actions.WithLabelValues("unknown", "malformed").Inc()
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.press(r.Context(), cb)
	w.WriteHeader(http.StatusOK)
}

// parseInteraction reads the form body Slack posts: one field, payload,
// holding the interaction as JSON.
func parseInteraction(body []byte) (slack.InteractionCallback, error) {
	var cb slack.InteractionCallback
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return cb, fmt.Errorf("bad form body: %w", err)
	}
	payload := form.Get("payload")
	if payload == "" {
		return cb, errors.New("no payload field: not a Slack interaction")
	}
	if err := json.Unmarshal([]byte(payload), &cb); err != nil {
		return cb, fmt.Errorf("payload is not an interaction: %w", err)
	}
	return cb, nil
}

// press handles a verified interaction, from HTTP or Socket Mode, after it
// has been (or while it is being) acknowledged: each button runs through
// the same authority matrix and handler as the command it stands for.
func (s *Server) press(ctx context.Context, cb slack.InteractionCallback) {
	if cb.Type != slack.InteractionTypeBlockActions {
		s.actions.WithLabelValues(string(cb.Type), "ignored").Inc()
		return
	}
	for _, a := range cb.ActionCallback.BlockActions {
		cmd, ok := buttonCommand(cb, a)
		if !ok {
			s.actions.WithLabelValues("unknown", "ignored").Inc()
			s.log.Info("button press with an unknown action ignored", "action", a.ActionID, "user", cb.User.ID)
			continue
		}
		req := SlashCommandRequest{Command: cmd, Text: cmd.String(), UserID: cb.User.ID, UserName: cb.User.Name,
			ChannelID: cb.Channel.ID, TeamID: cb.Team.ID, ResponseURL: cb.ResponseURL, Button: true}
		s.late.Add(1)
		go func() {
			defer s.late.Done()
			hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opt.WorkTimeout)
			defer cancel()
			resp, outcome := s.pressed(hctx, req)
			s.actions.WithLabelValues(a.ActionID, outcome).Inc()
			if resp.Text == "" {
				return
			}
			if err := s.postLate(req.ResponseURL, resp); err != nil {
				s.log.Error("posting the answer to a button press failed", "user", req.UserID, "action", a.ActionID, "err", err)
			}
		}()
	}
}

func (s *Server) pressed(ctx context.Context, req SlashCommandRequest) (SlackResponse, string) {
	if s.opt.Handler == nil {
		return SlackResponse{Text: "canarybot is starting up and cannot take button presses yet; try again in a minute."}, "error"
	}
	if why, ok := s.authorize(ctx, &req); !ok {
		return SlackResponse{Text: why}, "refused"
	}
	s.log.Info("button", "user", req.UserID, "verb", req.Command.Verb)
	return s.opt.Handler(ctx, req), "ok"
}

// buttonCommand is the command a button stands for. The stage buttons and
// GO / NO-GO carry bot.StageActionValue(release, stage), so that a press on
// an old message can be told apart from one on the current message.
func buttonCommand(cb slack.InteractionCallback, a *slack.BlockAction) (bot.SlashCommand, bool) {
	var c bot.SlashCommand
	switch a.ActionID {
	case bot.ActionPromote:
		c.Verb = bot.VerbPromote
	case bot.ActionHold:
		c.Verb, c.Reason = bot.VerbHold, "Hold button"
	case bot.ActionRollback:
		c.Verb, c.Reason = bot.VerbRollback, "Rollback button"
	case bot.ActionGo:
		c.Verb = bot.VerbGo
	case bot.ActionNoGo:
		c.Verb, c.Reason = bot.VerbNoGo, "NO-GO button"
	case bot.ActionReviewItems:
		// A checkbox group's press carries what is ticked in it now.
		var ticked []string
		for _, o := range a.SelectedOptions {
			ticked = append(ticked, o.Value)
		}
		c.Verb, c.Item, c.Reason = bot.VerbCheck, a.BlockID, "ticked: none"
		if len(ticked) > 0 {
			c.Reason = "ticked: " + strings.Join(ticked, ", ")
		}
		return c, true
	case bot.ActionReviewDone:
		// Item lists the ticked items of the whole checklist, from the
		// message's state Slack sends with the press.
		c.Verb, c.Item = bot.VerbReview, strings.Join(bot.ReviewTicked(cb.BlockActionState), ",")
	default:
		return c, false
	}
	if release, stage, err := bot.ParseActionValue(a.Value); err == nil {
		c.Release, c.Stage = release, stage
	}
	if c.Verb == bot.VerbRollback && c.Stage > 0 {
		c.Reason = fmt.Sprintf("Rollback button on stage %d", c.Stage)
	}
	return c, true
}
