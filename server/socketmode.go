package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// RunSocketMode serves the same slash commands and buttons over Slack's
// Socket Mode, for a workspace that cannot reach this server: Slack pushes
// them down a websocket the client opened with the app-level token
// (SLACK_APP_TOKEN), so there is no request to sign and nothing listens.
// It returns when ctx ends or the connection fails for good (a revoked
// token); the client reconnects by itself otherwise.
func (s *Server) RunSocketMode(ctx context.Context, client *socketmode.Client) error {
	s.socket.Store(true)
	defer s.socket.Store(false)
	h := socketmode.NewSocketmodeHandler(client)
	// By event type rather than HandleSlashCommand("/canary"): the HTTP
	// endpoint answers whatever the app named its command, and so does this.
	h.Handle(socketmode.EventTypeSlashCommand, func(evt *socketmode.Event, c *socketmode.Client) {
		s.SocketEvent(ctx, evt, c.Ack)
	})
	h.Handle(socketmode.EventTypeInteractive, func(evt *socketmode.Event, c *socketmode.Client) {
		s.SocketEvent(ctx, evt, c.Ack)
	})
	h.Handle(socketmode.EventTypeInvalidAuth, func(evt *socketmode.Event, c *socketmode.Client) {
		s.log.Error("Slack refused the app-level token: check SLACK_APP_TOKEN (an xapp- token with connections:write)")
	})
	h.HandleDefault(func(evt *socketmode.Event, c *socketmode.Client) {
		// Connection events (connecting, hello, ...) need nothing; anything
		// Slack sends as a request is acknowledged so it is not resent.
		if evt.Request != nil && evt.Request.EnvelopeID != "" {
			if err := c.Ack(*evt.Request); err != nil {
				s.log.Warn("socket mode ack failed", "type", evt.Type, "err", err)
			}
		}
		s.log.Debug("socket mode event", "type", evt.Type)
	})
	// The event loop only returns with an error; its context's end is the
	// normal way out.
	err := h.RunEventLoopContext(ctx)
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("slack socket mode: %w", err)
}

// SocketEvent handles one Socket Mode event with the handlers of the HTTP
// endpoints and acknowledges it with ack (the client's Ack): a slash
// command's answer is the ack's payload, as it is the HTTP response's body;
// a button press is acknowledged at once and answered via response_url.
// Socket Mode needs no signature check: only Slack holds the other end of
// the websocket the app token opened.
func (s *Server) SocketEvent(ctx context.Context, evt *socketmode.Event, ack func(req socketmode.Request, payload ...any) error) {
	if evt.Request == nil {
		return
	}
	start := time.Now()
	switch data := evt.Data.(type) {
	case slack.SlashCommand:
		resp := s.command(ctx, data)
		if err := ack(*evt.Request, message(resp)); err != nil {
			s.log.Error("socket mode: acknowledging a slash command failed", "user", data.UserID, "err", err)
		}
	case slack.InteractionCallback:
		if err := ack(*evt.Request); err != nil {
			s.log.Error("socket mode: acknowledging a button press failed", "user", data.User.ID, "err", err)
		}
		s.press(ctx, data)
	default:
		if err := ack(*evt.Request); err != nil {
			s.log.Warn("socket mode ack failed", "type", evt.Type, "err", err)
		}
		return
	}
	s.ack.Observe(time.Since(start).Seconds())
}
