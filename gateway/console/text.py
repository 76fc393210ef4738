"""The console's words in Vietnamese (the default) and English, and how it writes times:
in Asia/Ho_Chi_Minh, with the UTC time on hover. All text is NFC-normalised."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from markupsafe import Markup

LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")

# key -> (Vietnamese, English)
WORDS: dict[str, tuple[str, str]] = {
    "console": ("Bảng điều khiển cổng trao đổi", "Gateway console"),
    "overview": ("Tổng quan", "Overview"),
    "documents": ("Văn bản", "Documents"),
    "dead": ("Thư lỗi", "Dead letters"),
    "units": ("Đơn vị", "Units"),
    "ledger": ("Sổ cái", "Ledger"),
    "sign_in": ("Đăng nhập", "Sign in"),
    "sign_out": ("Đăng xuất", "Sign out"),
    "token": ("Mã truy cập", "Access token"),
    "language": ("Ngôn ngữ", "Language"),
    "signed_in_as": ("Đăng nhập với vai trò", "Signed in as"),
    "operator": ("vận hành", "operator"),
    "auditor": ("kiểm toán", "auditor"),
    "activity": ("Hoạt động theo phút", "Activity per minute"),
    "accepted": ("Đã nhận", "Accepted"),
    "delivered": ("Đã chuyển", "Delivered"),
    "refusals": ("Từ chối theo mã", "Refusals by code"),
    "backlog": ("Tồn đọng", "Backlog"),
    "waiting": ("Đang chờ", "Waiting"),
    "oldest": ("Chờ lâu nhất từ", "Oldest waiting since"),
    "retrying": ("Đang thử lại", "Retrying"),
    "expired": ("Hết hạn", "Expired"),
    "dead_count": ("Thư chết", "Dead"),
    "top_units": ("Mười đơn vị tồn đọng nhiều nhất", "Ten units with the largest backlog"),
    "failing_push": ("Điểm nhận đẩy đang lỗi", "Push endpoints failing"),
    "certs_expiring": ("Chứng thư sắp hết hạn", "Certificates expiring"),
    "checkpoint": ("Điểm kiểm tra mới nhất", "Latest checkpoint"),
    "age": ("Tuổi", "Age"),
    "alerts": ("Cảnh báo", "Alerts"),
    "no_alerts": ("Không có cảnh báo", "No alerts"),
    "none": ("Không có", "None"),
    "search": ("Tìm kiếm", "Search"),
    "query": ("Số ký hiệu hoặc trích yếu", "DocumentId or subject"),
    "sender": ("Nơi gửi", "Sender"),
    "recipient": ("Nơi nhận", "Recipient"),
    "state": ("Trạng thái", "State"),
    "since": ("Từ ngày", "From"),
    "until": ("Đến ngày", "To"),
    "any": ("Tất cả", "Any"),
    "subject": ("Trích yếu", "Subject"),
    "document_id": ("Số ký hiệu", "DocumentId"),
    "submitted_at": ("Thời điểm gửi", "Submitted at"),
    "next_page": ("Trang sau", "Next page"),
    "no_documents": ("Không tìm thấy văn bản", "No documents found"),
    "signature": ("Chữ ký", "Signature"),
    "ledger_entry": ("Mục sổ cái", "Ledger entry"),
    "attachments": ("Tệp đính kèm", "Attachments"),
    "content_type": ("Kiểu", "Type"),
    "size": ("Kích thước (byte)", "Size (bytes)"),
    "timeline": ("Diễn biến theo nơi nhận", "Timeline per recipient"),
    "receipt": ("Biên nhận", "Receipt"),
    "download_receipt": ("Tải biên nhận", "Download receipt"),
    "event": ("Sự kiện", "Event"),
    "event_code": ("Mã", "Code"),
    "time": ("Thời điểm", "Time"),
    "details": ("Chi tiết", "Details"),
    "transport": ("Chuyển phát", "Transport"),
    "business": ("Xử lý", "Business status"),
    "reason": ("Lý do", "Reason"),
    "unit": ("Đơn vị", "Unit"),
    "name": ("Tên", "Name"),
    "copy": ("Bản sao", "Copy"),
    "attempt": ("Lần thử", "Attempt"),
    "last_error": ("Lỗi gần nhất", "Last error"),
    "redrive": ("Gửi lại", "Redrive"),
    "redrive_selected": ("Gửi lại các bản đã chọn", "Redrive the selected"),
    "redrive_all": ("Gửi lại tất cả của đơn vị", "Redrive all of the unit"),
    "confirm": ("Xác nhận", "Confirm"),
    "cancel": ("Hủy", "Cancel"),
    "confirm_redrive": ("Xác nhận gửi lại", "Confirm the redrive"),
    "redriven": ("Đã gửi lại", "Redriven"),
    "no_dead": ("Không có thư lỗi", "No dead letters"),
    "delivery_mode": ("Cách nhận", "Delivery"),
    "endpoint": ("Điểm nhận", "Endpoint"),
    "last_success": ("Thành công gần nhất", "Last success"),
    "certificate": ("Chứng thư", "Certificate"),
    "expires": ("Hết hạn", "Expires"),
    "status": ("Tình trạng", "Status"),
    "actions": ("Thao tác", "Actions"),
    "status_active": ("Đang hoạt động", "Active"),
    "status_suspended": ("Tạm dừng", "Suspended"),
    "suspend": ("Tạm dừng", "Suspend"),
    "resume": ("Hoạt động lại", "Resume"),
    "add_unit": ("Thêm đơn vị", "Add a unit"),
    "code": ("Mã định danh", "Code"),
    "parent": ("Đơn vị cấp trên", "Parent"),
    "level": ("Cấp", "Level"),
    "add": ("Thêm", "Add"),
    "tree_size": ("Số mục", "Tree size"),
    "verify": ("Kiểm tra toàn bộ sổ cái", "Verify the whole ledger"),
    "verify_running": ("Đang kiểm tra…", "Verifying…"),
    "verify_ok": ("Sổ cái toàn vẹn", "The ledger is intact"),
    "verify_failed": ("Sổ cái có sai lệch", "The ledger has a fault"),
    "checked": ("Đã kiểm", "Checked"),
    "export": ("Xuất truy vấn kiểm toán", "Export an audit query"),
    "event_types": ("Loại sự kiện", "Event types"),
    "format": ("Định dạng", "Format"),
    "entries": ("Các mục", "Entries"),
    "forbidden": ("Vai trò này không được làm việc đó", "This role may not do that"),
    "not_found": ("Không tìm thấy", "Not found"),
    "bad_token": ("Mã truy cập không hợp lệ", "The token is not valid"),
    "unit_token": (
        "Mã của đơn vị không dùng được bảng điều khiển",
        "A unit's token cannot open the console",
    ),
    "expired_form": (
        "Biểu mẫu đã hết hạn, hãy thử lại",
        "The form has expired; please try again",
    ),
    "bad_form": ("Không đọc được biểu mẫu", "The form could not be read"),
    "done": ("Đã xong", "Done"),
    "error": ("Lỗi", "Error"),
    "page": ("Trang", "Page"),
    "per_minute_hint": ("3 giờ gần nhất", "the last 3 hours"),
}


def words(lang: str) -> dict[str, str]:
    column = 0 if lang == "vi" else 1
    return {key: unicodedata.normalize("NFC", pair[column]) for key, pair in WORDS.items()}


def nfc(value: object) -> str:
    return unicodedata.normalize("NFC", "" if value is None else str(value))


def when(value: datetime | str | None) -> Markup:
    """A time as people in Việt Nam read it, with the UTC time on hover."""
    if value is None or value == "":
        return Markup("–")
    t = datetime.fromisoformat(value) if isinstance(value, str) else value
    utc = t.astimezone(UTC)
    # digits and punctuation only: nothing to escape (Markup.format costs a page of 809
    # units a tenth of its time)
    return Markup(
        f'<time datetime="{utc.isoformat()}" title="{utc:%Y-%m-%d %H:%M:%S} UTC">'
        f"{t.astimezone(LOCAL):%d/%m/%Y %H:%M:%S}</time>"
    )


def age(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    if s < 2 * 86400:
        return f"{s // 3600} h"
    return f"{s // 86400} d"
